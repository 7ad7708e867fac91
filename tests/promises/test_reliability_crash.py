"""Crash and resume through the API, and checkpoints that are damaged.

tests/promises/test_crash_resume.py kills a fit on a local model; here the model is a paid API
(RemoteModel against the local server, with faults) and the run keeps its answers in
``cache_dir``: a BAR fit killed with SIGKILL at random points and resumed from its checkpoint
ends with the same program (the budget does not bind), and the server billed at most the requests in
flight at the kill; the resumed ledger counts the step in flight as spent, so max_queries holds.
"""

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import tempfile
import time
from pathlib import Path

import _remote_crash_child as child
import numpy as np
import pytest
from _extras import requires
from _figures import examples, record, scale
from _models import fresh_linear
from hypothesis import HealthCheck, given, settings, strategies as st

from bar_sdk import BARClassifier, CheckpointError
from bar_sdk.adapters.server import DemoModel, Faults, serve
from bar_sdk.checkpoint import read_state

KEY = "reliab-crash-key-Zp4"
DEMO = DemoModel(child.SHAPE, n_classes=6, random_state=0)
FAULTS = Faults(rate_429=0.10, rate_500=0.05, retry_after=0, random_state=5)
# Where to kill, as a share of what the uninterrupted run paid: one random point in each of
# n equal stretches of the run (the first often falls in the label-mapping pass, before any
# checkpoint exists).
_N_POINTS = 3 * scale()
KILL_POINTS = (
    ((np.arange(_N_POINTS) + np.random.default_rng(2020).random(_N_POINTS)) / _N_POINTS * 0.9 + 0.05).round(3).tolist()
)
IN_FLIGHT = child.REMOTE["batch_size"] * child.REMOTE["max_concurrency"]  # images a kill can strand


@pytest.fixture(scope="module")
def forkserver():
    """Processes forked from a server that imported the child's code once (no threads in it)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["_remote_crash_child"])
    helpers, root = Path(child.__file__).resolve().parent, Path(__file__).resolve().parents[2]
    with pytest.MonkeyPatch.context() as env:  # the server imports the preload before it sees sys.path
        env.setenv("PYTHONPATH", os.pathsep.join([str(helpers), str(root), os.environ.get("PYTHONPATH", "")]))
        multiprocessing.forkserver.ensure_running()
    return ctx


@pytest.fixture(scope="module")
def reference():
    with serve(DEMO, api_keys=[KEY], faults=FAULTS) as server, pytest.MonkeyPatch.context() as env:
        env.setenv("CLARIFAI_PAT", KEY)
        clf, model = child.fit(server.base_url)
        assert model.ledger.billed == server.billed
        step = clf.history_["queries"][1] - clf.history_["queries"][0]
        return clf, server.billed, step


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@requires("server")
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_through_the_api_then_resume_pays_almost_nothing_twice(tmp_path, forkserver, reference, point):
    ref, ref_billed, step = reference
    cache, ckpt = tmp_path / "cache", tmp_path / "run.bar"
    with serve(DEMO, api_keys=[KEY], faults=FAULTS) as server:
        proc = forkserver.Process(target=child.main, args=(server.base_url, str(cache), str(ckpt), KEY))
        proc.start()
        target = max(1, int(point * ref_billed))
        deadline = time.monotonic() + 90
        while server.billed < target:
            if not proc.is_alive() or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"child ended (exit code {proc.exitcode}) before the kill point {target}")
            time.sleep(0.002)
        proc.kill()  # SIGKILL: no handler, no cleanup, no flush
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        time.sleep(0.1)  # a request the server was still answering gets billed
        killed_at = server.billed
        with pytest.MonkeyPatch.context() as env:
            env.setenv("CLARIFAI_PAT", KEY)
            clf, model = child.fit(server.base_url, cache, ckpt)
        total = server.billed
    np.testing.assert_array_equal(clf.theta_, ref.theta_)
    np.testing.assert_array_equal(clf.program_, ref.program_)
    # The step (or mapping pass) in flight at the kill is counted as spent: the ledger knows at least
    # what the server billed, and max_queries bounds that across the crash.
    lost = clf.ledger_.by_purpose.get(BARClassifier.CRASH_PURPOSE, 0)
    assert lost in (0, step, len(child.data()[1]))
    assert clf.queries_ == ref.queries_ + lost
    assert total <= clf.queries_ <= child.BAR["max_queries"]
    # At most one step more than the uninterrupted run, by the server's count.
    assert ref_billed <= total <= ref_billed + max(step, len(child.data()[1]))
    # What the answer cache buys: only answers in flight at the kill are paid twice.
    assert total - ref_billed <= IN_FLIGHT
    # The ledger on disk knew every paid answer but those in flight, and resumed from there.
    assert total - IN_FLIGHT <= model.ledger.billed <= total
    record("crash_api", points=1, killed_at=killed_at, extra_billed=total - ref_billed, step=step)


# -- damaged checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    path = tmp_path_factory.mktemp("ckpt") / "run.bar"
    BARClassifier(fresh_linear(), max_queries=700, random_state=0, checkpoint=str(path)).fit(d.data[:60], d.target[:60])
    return path.read_bytes(), (d.data[:60], d.target[:60])


DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0, exclude_max=True), st.just(0)),
    st.tuples(st.just("flip"), st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("append"), st.just(0.0), st.integers(1, 4096)),
)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=DAMAGE)
def test_a_truncated_or_altered_checkpoint_is_refused_whole_before_any_query(checkpoint_bytes, damage):
    raw, (X, y) = checkpoint_bytes
    kind, where, value = damage
    i = int(where * len(raw))
    if kind == "truncate":
        bad = raw[:i]
    elif kind == "flip":
        bad = raw[:i] + bytes([raw[i] ^ value]) + raw[i + 1 :]
    else:
        bad = raw + bytes(j % 256 for j in range(value))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.bar"
        path.write_bytes(bad)
        with pytest.raises(CheckpointError, match="checksum|not a bar-sdk state file"):
            read_state(path)
        model = fresh_linear()
        with pytest.raises(CheckpointError, match=str(path)):
            BARClassifier(model, max_queries=700, random_state=0, checkpoint=str(path)).fit(X, y)
        assert model.seen == 0 and path.read_bytes() == bad  # nothing queried, nothing overwritten
    record("checkpoint_damage", cases=1)
