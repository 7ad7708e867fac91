"""RemoteModel against the real loopback server: concurrency, rate limits, faults, exact billing."""

import asyncio
import time

import numpy as np
import pytest
from _extras import requires
from _float32 import assert_close_f32, demo_model_rtol

from bar_sdk import AuthenticationError, MeteredModel, QueryBudgetExceeded, QueryLedger, TransientError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize
from bar_sdk.adapters.server import DemoModel, Faults, serve

pytestmark = requires("server")  # every test talks to the local server

SHAPE = (1, 8, 8)
MODEL = DemoModel(SHAPE, n_classes=5, random_state=2)
LABELS = list(MODEL.labels)
FAST = RetryPolicy(initial=0.01, jitter=0.01, maximum=0.2, max_attempts=12, random_state=0)


def images(n, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE)).astype(np.float32)


def expected(x):
    """What the served model says about the 8-bit images the API receives."""
    return MODEL.predict_proba(quantize(x))


def assert_answers(p, x):
    """``p`` is what the served model says about ``x``'s 8-bit images, up to float32 rounding.

    The server scores each request's images as one batch (3, 1, ...), ``expected`` scores them all
    at once: BLAS sums the logits in another order, so the answers may differ in the last bits (an
    AMD EPYC machine saw 1.3e-6). The tolerance is float32's bound for this model and these images
    (tests/helpers/_float32.py); one gray level on one pixel moves a probability by several times it
    (tests/promises/test_float32_tolerances.py).
    """
    assert_close_f32(p, expected(x), demo_model_rtol(MODEL, quantize(x)))


OPENED = []


def remote(server, preset="clarifai", **kw):
    options = {"model_id": "demo"} if preset == "clarifai" else {"model": "org/demo"}
    options.update(kw)
    options.setdefault("retry", FAST)
    model = RemoteModel.from_preset(
        preset, base_url=server.base_url, api_key=server.api_key, labels=LABELS, input_shape=SHAPE, **options
    )
    OPENED.append(model)
    return model


def teardown_function(function):
    while OPENED:
        OPENED.pop().close()


def test_threads_answer_exactly_what_the_model_says_and_billing_agrees():
    x = images(40)
    with serve(MODEL) as server, remote(server, batch_size=3, max_concurrency=4) as model:
        p = model.predict_proba(x)
        assert_answers(p, x)
        assert model.ledger.billed == server.billed == 40
        assert model.ledger.requests == server.stats().requests == 14


def test_async_path_against_the_server():
    x = images(24, seed=1)
    with serve(MODEL, preset="huggingface") as server:
        model = remote(server, preset="huggingface", max_concurrency=6)
        p = asyncio.run(model.apredict_proba(x))
        assert_answers(p, x)
        assert model.ledger.billed == server.billed == 24 and server.stats().requests == 24


def test_async_calls_without_a_client_share_one_tls_context(monkeypatch):
    """Each apredict_proba without async_client opens its own httpx.AsyncClient; the CA bundle is read once
    (httpx reads it from disk for every client otherwise: tens of ms of the event loop per call)."""
    import ssl

    from bar_sdk.adapters.remote.http import default_ssl_context

    default_ssl_context.cache_clear()
    built = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: built.append(1) or real(*a, **k))
    with serve(MODEL, preset="huggingface") as server:
        model = remote(server, preset="huggingface", max_concurrency=2)
        built.clear()  # the blocking client's own context, made with the model
        for seed in range(3):
            x = images(4, seed=10 + seed)
            assert_answers(asyncio.run(model.apredict_proba(x)), x)
    assert len(built) == 1
    default_ssl_context.cache_clear()  # later tests build their own, as a new process would


def test_zero_lost_queries_under_injected_faults_and_both_sides_agree():
    faults = Faults(
        rate_429=0.15,
        rate_500=0.1,
        rate_malformed=0.05,
        rate_slow=0.05,
        slow_seconds=0.02,
        retry_after=0,
        random_state=7,
    )
    x = images(60, seed=2)
    with serve(MODEL, faults=faults) as server, remote(server, batch_size=4, max_concurrency=4) as model:
        p = model.predict_proba(x)
        stats = server.stats()
    assert_answers(p, x)  # nothing lost, nothing mixed up
    led = model.ledger
    assert led.billed == stats.billed == 60
    assert led.requests == stats.requests
    assert led.throttled == stats.injected["429"] > 0
    assert led.failures == stats.injected["500"] + stats.injected["malformed"] > 0
    assert led.retries == led.throttled + led.failures and led.in_flight == 0


def test_server_rate_limit_is_honoured_by_waiting_not_by_losing():
    x = images(8, seed=3)
    with serve(MODEL, rate_limit=8, burst=2) as server:
        model = remote(server, batch_size=1, max_concurrency=4, retry=RetryPolicy(initial=0.05, jitter=0.05))
        p = model.predict_proba(x)
        stats = server.stats()
    assert_answers(p, x)
    assert stats.throttled > 0 and model.ledger.throttled == stats.throttled  # it did push, and backed off
    assert model.ledger.billed == stats.billed == 8


def test_client_token_bucket_keeps_under_the_server_limit():
    x = images(10, seed=4)
    with serve(MODEL, rate_limit=10, burst=5) as server:  # burst >= in-flight requests absorbs jitter
        model = remote(server, batch_size=1, max_concurrency=4, rate_limit=10, burst=1)
        model.predict_proba(x)
        assert server.stats().throttled == 0 and model.ledger.throttled == 0
        assert model.ledger.billed == server.billed == 10


def test_wrong_key_fails_once_and_is_not_retried():
    with serve(MODEL, api_keys=["right"]) as server:
        model = RemoteModel.from_preset(
            "clarifai", base_url=server.base_url, api_key="wrong", model_id="demo", labels=LABELS, input_shape=SHAPE
        )
        OPENED.append(model)
        with pytest.raises(AuthenticationError, match="401"):
            model.predict_proba(images(2))
        assert server.stats().requests == 1 and server.billed == 0


def test_budget_holds_and_a_restart_pays_nothing_twice(tmp_path):
    x = images(12, seed=5)
    with serve(MODEL) as server:
        first = remote(server, cache_dir=tmp_path, max_queries=12, price_per_query=0.001)
        first.predict_proba(x[:8])
        first.close()
        again = remote(server, cache_dir=tmp_path, max_queries=12, price_per_query=0.001)
        assert_answers(again.predict_proba(x), x)  # 8 cached, 4 new
        with pytest.raises(QueryBudgetExceeded):
            again.predict_proba(images(1, seed=6))
        assert server.billed == again.ledger.billed == 12 and again.ledger.cost == pytest.approx(0.012)


def test_label_only_server_and_client():
    x = images(10, seed=7)
    with serve(MODEL, label_only=True) as server:
        model = remote(server, label_only=True)
        p = model.predict_proba(x)
    assert model.label_only
    np.testing.assert_array_equal(p.argmax(axis=1), expected(x).argmax(axis=1))
    assert set(np.unique(p)) == {0.0, 1.0} and np.all(p.sum(axis=1) == 1)


def test_through_the_sdk_ledger():
    # The way BARClassifier will use it: MeteredModel counts images, the remote ledger counts money.
    x = images(6, seed=8)
    with serve(MODEL) as server:
        metered = MeteredModel(remote(server), QueryLedger(max_queries=100), batch_size=4)
        metered.predict_proba(x, purpose="train")
        metered.predict_proba(x, purpose="train")
        assert metered.ledger.queries == 12  # every image asked for
        assert metered.model.ledger.billed == server.billed == 6 and metered.model.ledger.cache_hits == 6


def test_timed_out_answers_may_be_billed_by_the_server_and_are_reported_as_failures():
    # The honest limit of any client: an answer that arrives after the timeout was produced (and, by a
    # real vendor, billed) but never seen. The ledger counts it as a failure, never as billed.
    faults = Faults(rate_slow=1.0, slow_seconds=0.6)
    with serve(MODEL, faults=faults) as server:
        model = remote(server, timeout=0.2, retry=RetryPolicy(max_attempts=2, initial=0.01, jitter=0))
        with pytest.raises(TransientError, match="timed out"):
            model.predict_proba(images(1))
        deadline = time.monotonic() + 5
        while server.billed < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert model.ledger.billed == 0 and model.ledger.failures == 2 and server.billed == 2


def test_barclassifier_trains_through_the_api_and_the_two_ledgers_agree():
    from sklearn.datasets import load_breast_cancer

    from bar_sdk import BARClassifier

    data = load_breast_cancer()
    X, y = data.data[:60], data.target[:60]
    demo = DemoModel((1, 16, 16), n_classes=6, random_state=0)
    with serve(demo, rate_limit=200, burst=50, faults=Faults(rate_429=0.05, rate_500=0.05, retry_after=0)) as server:
        model = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=server.api_key,
            model_id="demo",
            labels=list(demo.labels),
            input_shape=(1, 16, 16),
            retry=FAST,
            max_queries=5_000,
        )
        OPENED.append(model)
        clf = BARClassifier(model, max_queries=600, batch_size=10, n_directions=2, smoothing=0.1, random_state=0)
        clf.fit(X, y)
        clf.predict(X[:10])
        led = model.ledger
        assert clf.queries_ <= 600
        assert led.billed + led.cache_hits == clf.ledger_.queries  # every image asked for: sent or cached
        assert led.billed == server.billed and led.in_flight == 0


CHILD = """
import sys
import numpy as np
sys.path.insert(0, {root!r})
from bar_sdk.adapters.remote import RemoteModel
model = RemoteModel.from_preset("clarifai", base_url={url!r}, api_key={key!r}, model_id="demo", labels={labels!r},
                                input_shape={shape!r}, batch_size=2, max_concurrency=1, cache_dir={cache!r})
for i in range(10_000):
    model.predict_proba(np.random.default_rng(i).random((2, *{shape!r})).astype(np.float32))
"""


def test_a_killed_process_loses_no_paid_answer(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    with serve(MODEL) as server:
        code = CHILD.format(
            root=root, url=server.base_url, key=server.api_key, labels=LABELS, shape=SHAPE, cache=str(tmp_path)
        )
        child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 60
        while server.billed < 20 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        paid = server.billed
        assert paid >= 20
        model = remote(server, cache_dir=tmp_path, batch_size=2)
        # At most the one request in flight at the kill was answered and not yet recorded.
        assert paid - 2 <= model.ledger.billed <= paid
        done = model.ledger.billed // 2
        for i in range(done):  # everything the ledger paid for is answered from disk
            model.predict_proba(np.random.default_rng(i).random((2, *SHAPE)).astype(np.float32))
        assert server.billed == paid and model.ledger.cache_hits == 2 * done
