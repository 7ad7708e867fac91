"""Four workers, one paid API: one shared budget and one shared rate limit, across a SIGKILL."""

import os
import signal
import time

import numpy as np
import pytest

from bar_sdk import QueryBudgetExceeded
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize
from bar_sdk.adapters.server import DemoModel, serve
from bar_sdk.errors import InvalidInputError

SHAPE = (1, 8, 8)
MODEL = DemoModel(SHAPE, n_classes=5, random_state=2)
LABELS = list(MODEL.labels)
FAST = RetryPolicy(initial=0.01, jitter=0.01, maximum=0.2, max_attempts=12, random_state=0)
BATCH = 20


def images(n, seed):
    return np.random.default_rng(seed).random((n, *SHAPE)).astype(np.float32)


class _DiesOnTokenN:
    """The shared bucket, seen by a worker that is SIGKILLed when it asks for its ``n``-th token: after
    its request's images were reserved in the shared ledger, before the request leaves."""

    def __init__(self, bucket, n):
        self.bucket, self.n, self.calls = bucket, n, 0

    def reserve(self, k=1):
        self.calls += 1
        if self.calls == self.n:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.bucket.reserve(k)

    def refund(self, k=1):
        self.bucket.refund(k)


def _worker(base_url, api_key, ledger, bucket, seed, n, cache_dir=None, kill_at=None):
    """One worker process: its own RemoteModel, the shared ledger and bucket; batches until done or refused."""
    model = RemoteModel.from_preset(
        "clarifai",
        base_url=base_url,
        api_key=api_key,
        model_id="demo",
        labels=LABELS,
        input_shape=SHAPE,
        batch_size=BATCH,
        ledger=ledger,
        rate_limiter=bucket if kill_at is None else _DiesOnTokenN(bucket, kill_at),
        retry=FAST,
        cache_dir=cache_dir,
        max_concurrency=1,
    )
    x = images(n, seed)
    answers = []
    try:
        for start in range(0, n, BATCH):
            try:
                answers.append(model.predict_proba(x[start : start + BATCH]))
            except QueryBudgetExceeded:
                break
    finally:
        model.close()
    return np.concatenate(answers) if answers else np.zeros((0, len(LABELS)))


def _services(name, cap, rate):
    from bar_sdk.adapters.ray import SharedRemoteLedger, SharedTokenBucket

    return SharedRemoteLedger.create(f"{name}-ledger", max_queries=cap), SharedTokenBucket.create(f"{name}-rate", rate)


def _end(*services):
    for s in services:
        s.kill()


def test_four_workers_one_budget_one_rate_limit_against_the_server(ray_cluster):
    rate = 40.0
    ledger, bucket = _services("t-four-remote", 1000, rate)
    try:
        with serve(MODEL, rate_limit=rate) as server:
            task = ray_cluster.remote(_worker).options(num_cpus=0.5, max_retries=0)
            t0 = time.monotonic()
            out = ray_cluster.get(
                [task.remote(server.base_url, server.api_key, ledger, bucket, seed, 300) for seed in range(4)]
            )
            elapsed = time.monotonic() - t0
            stats = server.stats()
        snap = ledger.snapshot()
        # 1,200 images asked for, 1,000 allowed: the server billed exactly the cap, exactly what the ledger says.
        assert stats.billed == snap["billed"] == sum(len(o) for o in out) == 1000
        assert snap["in_flight"] == 0 and snap["unconfirmed"] == 0 and snap["remaining"] == 0
        for seed, o in enumerate(out):
            np.testing.assert_allclose(o, MODEL.predict_proba(quantize(images(300, seed)[: len(o)])), rtol=1e-6)
        # The shared bucket kept the four together under the server's limit: no throttle, and no more than
        # rate * time (+ the first token) requests.
        assert stats.throttled == 0
        assert stats.requests == snap["requests"] == 50
        assert stats.requests <= rate * elapsed + 1
    finally:
        _end(ledger, bucket)


def test_a_worker_killed_mid_run_loses_nothing_and_bills_nothing_twice(ray_cluster, tmp_path):
    ledger, bucket = _services("t-kill", 1000, 50.0)
    try:
        with serve(MODEL) as server:
            task = ray_cluster.remote(_worker).options(num_cpus=0.5, max_retries=0)
            args = (server.base_url, server.api_key, ledger, bucket)
            doomed = task.remote(*args, 0, 120, str(tmp_path / "w0"), 4)
            other = task.remote(*args, 1, 120, str(tmp_path / "w1"))
            with pytest.raises(ray_cluster.exceptions.WorkerCrashedError):
                ray_cluster.get(doomed)
            held = ledger.snapshot()
            assert held["in_flight"] >= BATCH  # the dead worker's reservation still counts against the cap
            # Run the killed worker's job again with its answer cache: what it paid for comes back free.
            redo = task.remote(*args, 0, 120, str(tmp_path / "w0"))
            out0, out1 = ray_cluster.get([redo, other])
            stats = server.stats()
        moved = ledger.reclaim_dead()
        snap = ledger.snapshot()
        assert moved == BATCH and snap["in_flight"] == 0 and snap["unconfirmed"] == BATCH
        # Nothing lost: every image answered, as the model says.
        np.testing.assert_allclose(out0, MODEL.predict_proba(quantize(images(120, 0))), rtol=1e-6)
        np.testing.assert_allclose(out1, MODEL.predict_proba(quantize(images(120, 1))), rtol=1e-6)
        # Nothing billed twice: the server billed each of the 240 distinct images once, and the ledger agrees.
        assert stats.billed == snap["billed"] == 240
        assert snap["cache_hits"] == 3 * BATCH  # the 3 requests answered before the kill were not sent again
    finally:
        _end(ledger, bucket)


def test_remote_model_refuses_an_outside_ledger_or_limiter_together_with_settings_of_its_own():
    from bar_sdk.adapters.remote.ledger import RemoteLedger
    from bar_sdk.adapters.remote.ratelimit import TokenBucket

    common = dict(base_url="http://127.0.0.1:9", api_key="k", model_id="demo", labels=LABELS, input_shape=SHAPE)
    with pytest.raises(InvalidInputError, match="max_queries=5 together with ledger="):
        RemoteModel.from_preset("clarifai", ledger=RemoteLedger(10), max_queries=5, **common)
    with pytest.raises(InvalidInputError, match="rate_limit=2 together with rate_limiter="):
        RemoteModel.from_preset("clarifai", rate_limiter=TokenBucket(5.0), rate_limit=2, **common)
    with pytest.raises(InvalidInputError, match="ledger=int"):
        RemoteModel.from_preset("clarifai", ledger=3, **common)
    outside = RemoteLedger(10)
    with RemoteModel.from_preset("clarifai", ledger=outside, **common) as model:
        assert model.ledger is outside


def test_a_shared_ledger_with_a_state_dir_comes_back_with_its_counts(ray_cluster, tmp_path):
    from bar_sdk.adapters.ray import SharedRemoteLedger

    first = SharedRemoteLedger.create("t-state", max_queries=100, state_dir=tmp_path)
    first.reserve(30)
    first.record_billed(30)
    first.kill()  # the actor is gone (a cluster restart, say)...
    again = SharedRemoteLedger.create("t-state", max_queries=100, state_dir=tmp_path)
    try:
        assert again.billed == 30 and again.remaining == 70  # ...its successor starts from the saved counts
        with pytest.raises(QueryBudgetExceeded):
            again.reserve(71)
    finally:
        again.kill()
