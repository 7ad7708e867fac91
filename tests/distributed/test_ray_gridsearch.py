"""GridSearchCV under joblib's Ray backend, every fold's queries drawn from one shared remote budget."""

import functools

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV

from bar_sdk import BARClassifier
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.adapters.server import DemoModel, serve

SHAPE = (1, 8, 8)
MODEL = DemoModel(SHAPE, n_classes=5, random_state=2)


def make_remote(base_url, api_key, ledger):
    """Runs in each worker: its own client, the one shared ledger."""
    return RemoteModel.from_preset(
        "clarifai",
        base_url=base_url,
        api_key=api_key,
        model_id="demo",
        labels=list(MODEL.labels),
        input_shape=SHAPE,
        batch_size=32,
        ledger=ledger,
        retry=RetryPolicy(initial=0.01, maximum=0.2, max_attempts=8, random_state=0),
    )


def test_grid_search_on_ray_draws_every_fold_from_one_budget(ray_cluster):
    joblib = pytest.importorskip("joblib")
    from ray.util.joblib import register_ray

    from bar_sdk.adapters.ray import PerProcessModel, SharedRemoteLedger

    data = load_breast_cancer()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(data.target), 60, replace=False)
    X, y = data.data[idx], data.target[idx]
    cap = 1500
    ledger = SharedRemoteLedger.create("t-grid", max_queries=cap)
    try:
        with serve(MODEL) as server:
            model = PerProcessModel(functools.partial(make_remote, server.base_url, server.api_key, ledger))
            clf = BARClassifier(model, max_queries=200, batch_size=10, n_directions=2, random_state=0)
            register_ray()
            with joblib.parallel_backend("ray"):
                search = GridSearchCV(clf, {"grid_size": [2, 4]}, cv=2, n_jobs=2).fit(X, y)
            billed = server.billed
        snap = ledger.snapshot()
        assert search.best_params_["grid_size"] in (2, 4)
        # 4 fits (and their scoring) plus the refit, in several processes, all paid from the one budget:
        assert billed == snap["billed"] <= cap
        assert billed > 4 * 100  # every fold did query (through the shared ledger, not its own)
    finally:
        ledger.kill()
