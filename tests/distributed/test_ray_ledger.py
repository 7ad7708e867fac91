"""One budget for every worker: the shared QueryLedger actor, its extra, its lifetime."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bar_sdk import MeteredModel, QueryBudgetExceeded
from bar_sdk.adapters.server import DemoModel
from bar_sdk.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]

BLOCK_RAY = """
import sys
sys.modules['ray'] = None  # `import ray` now fails as it does where Ray is not installed
sys.path.insert(0, {root!r})
import numpy as np
import bar_sdk, bar_sdk.adapters, bar_sdk.adapters.remote, bar_sdk.distributed
from bar_sdk.audit import audit
from bar_sdk.adapters.server import DemoModel
assert not any(m.startswith('ray.') for m in sys.modules)
def says(fn):
    try:
        fn()
    except ImportError as exc:
        assert "pip install 'bar-sdk[ray]'" in str(exc), exc
        return
    raise AssertionError('no ImportError')
says(lambda: bar_sdk.distributed.SharedQueryLedger.create('b', 10))
says(lambda: __import__('bar_sdk.adapters.ray'))
m = DemoModel((1, 4, 4), 3)
x = np.zeros((2, 1, 4, 4), np.float32)
says(lambda: audit(m, x, [0, 1], attacks=['square'], eps=[0.1], max_queries=5, executor='ray'))
print('ok')
"""


def test_without_ray_nothing_imports_it_and_every_entry_point_names_the_extra():
    out = subprocess.run(
        [sys.executable, "-c", BLOCK_RAY.format(root=str(ROOT))], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_batch_that_does_not_fit_is_refused_whole(ray_cluster):
    from bar_sdk.distributed import SharedQueryLedger, kill_service

    ledger = SharedQueryLedger.create("t-refuse", max_queries=10)
    try:
        model = MeteredModel(DemoModel((1, 4, 4), 3), ledger)
        model.predict_proba(np.zeros((6, 1, 4, 4), np.float32))
        with pytest.raises(QueryBudgetExceeded):  # the actor's refusal arrives as the ledger's own error
            model.predict_proba(np.zeros((5, 1, 4, 4), np.float32))
        assert ledger.queries == 6 and ledger.remaining == 4
        model.predict_proba(np.zeros((4, 1, 4, 4), np.float32))
        assert ledger.queries == 10
    finally:
        kill_service("t-refuse")


def _spend(ledger, batch, seed):
    """A worker: metered batches of ``batch`` images until the shared budget refuses one."""
    model = MeteredModel(DemoModel((1, 4, 4), 3), ledger)
    rng = np.random.default_rng(seed)
    answered = 0
    while True:
        try:
            model.predict_proba(rng.random((batch, 1, 4, 4)).astype(np.float32))
        except QueryBudgetExceeded:
            return answered
        answered += batch


def test_four_workers_draw_from_one_budget(ray_cluster):
    from bar_sdk.distributed import SharedQueryLedger, kill_service

    ledger = SharedQueryLedger.create("t-four", max_queries=100)
    try:
        task = ray_cluster.remote(_spend).options(num_cpus=0.5, max_retries=0)
        answered = ray_cluster.get([task.remote(ledger, 7, seed) for seed in range(4)])
        # Each worker's ledger is the one actor: together they used the cap, never more, and it counted each batch.
        assert sum(answered) == ledger.queries
        assert 100 - 7 < ledger.queries <= 100
    finally:
        kill_service("t-four")


SECOND_DRIVER = """
import sys
sys.path.insert(0, {root!r})
import ray
ray.init(address={address!r}, namespace='bar_sdk', log_to_driver=False)
from bar_sdk.distributed import SharedQueryLedger
ledger = SharedQueryLedger.create('t-outlives', max_queries=50)
ledger.reserve(20, 'first job')
print(ledger.queries)
"""


def test_the_budget_outlives_the_driver_that_made_it_and_a_second_job_attaches_by_name(ray_cluster):
    from bar_sdk.distributed import SharedQueryLedger, kill_service

    address = ray_cluster.get_runtime_context().gcs_address
    out = subprocess.run(
        [sys.executable, "-c", SECOND_DRIVER.format(root=str(ROOT), address=address)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "20"
    try:
        ledger = SharedQueryLedger("t-outlives")  # that driver has exited; its detached actor has not
        assert ledger.queries == 20 and ledger.max_queries == 50
        assert ledger.by_purpose == {"first job": 20}
        with pytest.raises(InvalidInputError, match="max_queries"):
            SharedQueryLedger.create("t-outlives", max_queries=60)  # same name, other cap: refused, not merged
        with pytest.raises(InvalidInputError, match="no shared query ledger"):
            SharedQueryLedger("t-no-such-ledger")
    finally:
        kill_service("t-outlives")
