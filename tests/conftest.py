"""Shared test setup: one torch thread (the machine is shared; see the common brief)."""

try:
    import torch
except ImportError:  # torch is optional; bar_sdk must work without it
    torch = None

if torch is not None:
    torch.set_num_threads(1)


import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster for the whole session (its startup, seconds, is paid once).

    Skips the tests that use it, with the reason, where Ray is not installed
    or cannot start here.
    """
    try:
        import ray
    except ImportError:
        pytest.skip("Ray is not installed (pip install 'bar-sdk[ray]')")
    here = Path(__file__).resolve().parent
    # Workers import by module name what pytest imported so: the helpers and the test modules whose
    # functions and classes they run (the worktree root, tests/helpers/, and each folder of tests).
    folders = sorted(str(p) for p in here.iterdir() if p.is_dir() and any(p.glob("test_*.py")))
    paths = (str(here.parent), str(here / "helpers"), *folders, os.environ.get("PYTHONPATH"))
    env = {"PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        # address="local": always a fresh cluster of our own, never one a `ray start` left running.
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=200 * 1024**2,
            namespace="bar_sdk",
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
    except Exception as exc:  # no shared memory, no ports, ...: Ray cannot run here
        pytest.skip(f"Ray could not start a local cluster here ({type(exc).__name__}: {exc})")
    yield ray
    ray.shutdown()
