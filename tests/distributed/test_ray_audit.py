"""audit(..., executor="ray"): chunks over Ray tasks, the same per-image results as a local run."""

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from bar_sdk.adapters.server import DemoModel
from bar_sdk.audit import audit
from bar_sdk.errors import InvalidInputError

SHAPE = (1, 8, 8)
MODEL = DemoModel(SHAPE, n_classes=5, random_state=5)


def data(n=10):
    x = np.random.default_rng(2).random((n, *SHAPE)).astype(np.float32)
    return x, MODEL.predict_proba(x).argmax(axis=1)


def assert_same(a, b):
    assert a.robust_accuracy == b.robust_accuracy and a.total_queries == b.total_queries
    for name in a.results:
        for ra, rb in zip(a.results[name], b.results[name], strict=True):
            for field in ("x_adv", "success", "queries", "distortion", "adv_label", "clean_label"):
                np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field), err_msg=f"{name}.{field}")
            assert ra.status == rb.status and ra.message == rb.message


KW = dict(attacks=["square", "hopskipjump"], eps=[0.05, 0.1], max_queries=40, random_state=7)


def test_a_distributed_audit_equals_the_local_one(ray_cluster):
    x, y = data()
    local = audit(MODEL, x, y, **KW)
    spread = audit(MODEL, x, y, executor="ray", chunk_size=3, **KW)
    assert_same(spread, local)
    assert spread.executor["chunks"] == 2 * 2 * 4 and spread.executor["chunks_retried"] == 0
    assert "executor" not in local.to_dict() and spread.to_dict()["executor"]["chunk_size"] == 3


class DiesOnce:
    """DemoModel whose worker is SIGKILLed the first time it sees a marked image (a marker file says it did)."""

    def __init__(self, marker):
        self.marker = str(marker)
        self.n_classes, self.input_shape, self.labels = MODEL.n_classes, MODEL.input_shape, MODEL.labels

    def predict_proba(self, x):
        if len(x) and not Path(self.marker).exists() and np.any(x[:, 0, 0, 0] == np.float32(0.123)):
            Path(self.marker).write_text("died")
            os.kill(os.getpid(), signal.SIGKILL)
        return MODEL.predict_proba(x)


def test_a_chunk_whose_worker_dies_is_redone_and_reported(ray_cluster, tmp_path):
    x, y = data()
    x[4, 0, 0, 0] = 0.123  # chunk 1 (images 3..5) kills its worker once
    y = MODEL.predict_proba(x).argmax(axis=1)
    kw = dict(KW, attacks=["square"])
    local = audit(MODEL, x, y, **kw)
    spread = audit(DiesOnce(tmp_path / "marker"), x, y, executor="ray", chunk_size=3, **kw)
    assert (tmp_path / "marker").exists()
    assert spread.executor["chunks_retried"] == 1
    assert_same(spread, local)


def test_ray_audits_refuse_what_cannot_be_split_before_any_query(ray_cluster):
    x, y = data(4)
    with pytest.raises(InvalidInputError, match="random_state=None"):
        audit(MODEL, x, y, attacks=["square"], eps=[0.1], max_queries=5, random_state=None, executor="ray")
    with pytest.raises(InvalidInputError, match="executor"):
        audit(MODEL, x, y, attacks=["square"], eps=[0.1], max_queries=5, executor="dask")


def test_bar_audit_ray_address_runs_the_audit_on_ray(monkeypatch, tmp_path):
    import importlib

    from bar_sdk.cli import audit as cli_audit, main

    x, y = data(4)
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    seen = {}

    def fake_audit(model, x, y, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(importlib.import_module("bar_sdk.audit"), "audit", fake_audit)
    monkeypatch.setattr(cli_audit, "build", lambda args: (MODEL, x, y))
    with pytest.raises(SystemExit):
        main(
            [
                "audit",
                "--model",
                "x",
                "--data",
                str(tmp_path / "d.npz"),
                "--ray-address",
                "auto",
                "--chunk-size",
                "2",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert seen["executor"] == "ray" and seen["ray_address"] == "auto" and seen["chunk_size"] == 2


def test_a_model_that_cannot_travel_is_refused_by_name_before_any_query(ray_cluster):
    from bar_sdk.adapters.ray import PerProcessModel

    class Unpicklable:
        n_classes, input_shape = MODEL.n_classes, MODEL.input_shape
        calls = 0

        def predict_proba(self, x):
            Unpicklable.calls += 1
            return MODEL.predict_proba(x)

        def __getstate__(self):
            raise TypeError("holds a connection")

    x, y = data(4)
    with pytest.raises(InvalidInputError, match="model=Unpicklable cannot be sent to Ray workers.*PerProcessModel"):
        audit(Unpicklable(), x, y, attacks=["square"], eps=[0.1], max_queries=5, executor="ray")
    assert Unpicklable.calls == 0
    # Its recipe travels: each worker builds its own.
    report = audit(
        PerProcessModel(lambda: MODEL),
        x,
        y,
        attacks=["square"],
        eps=[0.1],
        max_queries=5,
        executor="ray",
        random_state=1,
    )
    assert (
        report.results["square"][0].total_queries
        == audit(MODEL, x, y, attacks=["square"], eps=[0.1], max_queries=5, random_state=1).total_queries
    )


class _DiesOnItsThirdRequest:
    """A rate limiter that lets everything through, except that the first worker process to ask for its
    third token is SIGKILLed (after its images were reserved, before the request leaves)."""

    def __init__(self, marker):
        self.marker, self.calls = Path(marker), 0

    def reserve(self, n=1):
        self.calls += 1
        if self.calls == 3 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return 0.0

    def refund(self, n=1):
        pass


def _make_remote(base_url, api_key, ledger, cache_dir, marker):
    from bar_sdk.adapters.remote import RemoteModel, RetryPolicy

    return RemoteModel.from_preset(
        "clarifai",
        base_url=base_url,
        api_key=api_key,
        model_id="demo",
        labels=list(MODEL.labels),
        input_shape=SHAPE,
        ledger=ledger,
        cache_dir=cache_dir,
        rate_limiter=None if marker is None else _DiesOnItsThirdRequest(marker),
        retry=RetryPolicy(initial=0.01, maximum=0.1, max_attempts=4, random_state=0),
    )


def test_a_remote_audit_on_ray_redoes_a_killed_chunk_from_the_cache_and_bills_nothing_twice(ray_cluster, tmp_path):
    import functools

    from bar_sdk.adapters.ray import PerProcessModel, SharedRemoteLedger
    from bar_sdk.adapters.server import serve

    x, y = data(6)
    kw = dict(attacks=["square"], eps=[0.1], max_queries=15, random_state=3)
    ledger = SharedRemoteLedger.create("t-audit-remote", max_queries=5000)
    try:
        with serve(MODEL) as server:
            local_model = _make_remote(server.base_url, server.api_key, None, tmp_path / "local", None)
            local = audit(local_model, x, y, **kw)
            local_model.close()
            before = server.billed
            shared = PerProcessModel(
                functools.partial(
                    _make_remote,
                    server.base_url,
                    server.api_key,
                    ledger,
                    str(tmp_path / "shared"),
                    str(tmp_path / "marker"),
                )
            )
            spread = audit(shared, x, y, executor="ray", chunk_size=2, **kw)
            billed = server.billed - before
        assert (tmp_path / "marker").exists() and spread.executor["chunks_retried"] == 1
        assert_same(spread, local)
        ledger.reclaim_dead()
        snap = ledger.snapshot()
        # Every image the server billed in the Ray run is in the one ledger, once; the redone chunk's first
        # answers came from the shared cache; the dead worker's unsent request stays counted as unconfirmed.
        assert billed == snap["billed"]
        assert billed == before  # the same images a local run paid for, each once: no redone image re-paid
        assert snap["cache_hits"] >= 2 and snap["unconfirmed"] > 0 and snap["in_flight"] == 0
    finally:
        ledger.kill()
