"""Crash and resume: a fit killed with SIGKILL at random points resumes to the same program.

The step in flight at the kill is counted as spent (journaled before it left), so max_queries
holds across the crash; when the budget binds the resumed run may stop one step earlier.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import _crash_child as child
import numpy as np
import pytest

from bar_sdk import BARClassifier

CHILD = Path(child.__file__)


def billed(log: Path) -> int:
    return sum(int(line) for line in log.read_text().split()) if log.exists() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    log = tmp_path_factory.mktemp("ref") / "log"
    X, y = child.data()
    clf = BARClassifier(child.Logged(log, 0.0), **child.PARAMS).fit(X, y)
    step = clf.history_["queries"][1] - clf.history_["queries"][0]
    return clf, billed(log), step


def kill_and_resume(tmp_path, kill_after_calls, *mode):
    """Kill the child after ``kill_after_calls`` model calls, resume it; return (theta, queries_, billed)."""
    ckpt, log = tmp_path / "run.bar", tmp_path / "billed.log"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(ckpt), str(log), "0.01", *mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(log.read_text().split()) < kill_after_calls if log.exists() else True:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"child ended before the kill point: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # resume in a fresh process, as a user would after a crash
    out = subprocess.run(
        [sys.executable, str(CHILD), str(ckpt), str(log), "0", *mode], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    theta_hex, queries = eval(out.stdout.strip())
    return np.frombuffer(bytes.fromhex(theta_hex), dtype=np.float64), queries, billed(log)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("kill_after_calls", [1, 9, 31])
def test_sigkill_then_resume_gives_the_same_program(tmp_path, reference, kill_after_calls):
    ref, ref_billed, step = reference
    theta, queries, total = kill_and_resume(tmp_path, kill_after_calls)
    np.testing.assert_array_equal(theta, ref.theta_)
    # the step in flight when the process died is paid again, nothing more, and the ledger counts it
    assert ref_billed <= total <= ref_billed + max(step, len(child.data()[1]))
    assert total <= queries <= ref.queries_ + max(step, len(child.data()[1]))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("kill_after_calls", [2, 40])
def test_sigkill_then_resume_never_crosses_a_binding_budget(tmp_path, kill_after_calls):
    theta, queries, total = kill_and_resume(tmp_path, kill_after_calls, "binding")
    # today: the kill's step paid twice and uncounted, up to 8,100 images for max_queries=8,000
    assert total <= queries <= child.BINDING["max_queries"]
    assert np.all(np.isfinite(theta))


def test_checkpoint_written_atomically_leaves_no_partial_file(tmp_path):
    """Every state on disk is a whole one: each read of a checkpoint during a run verifies."""
    from bar_sdk.checkpoint import read_state

    ckpt, log = tmp_path / "run.bar", tmp_path / "billed.log"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(ckpt), str(log), "0.005"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    reads = 0
    try:
        while proc.poll() is None and reads < 200:
            if ckpt.exists():
                read_state(ckpt)  # raises CheckpointError on a torn file
                reads += 1
            time.sleep(0.003)
    finally:
        proc.kill()
        proc.wait()
    assert reads > 5
