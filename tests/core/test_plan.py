"""The cost plan agrees with what a run then spends: images per phase, requests, dollars."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from bar_sdk import BARClassifier, InvalidInputError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.adapters.server import DemoModel, serve
from bar_sdk.plan import plan_bar

DATA = load_breast_cancer()
FAST = RetryPolicy(initial=0.01, jitter=0.01, maximum=0.2, max_attempts=12, random_state=0)


@pytest.mark.parametrize(
    "n, options",
    [
        (37, dict(max_queries=500, batch_size=10, n_directions=2)),  # stops at the budget
        (37, dict(max_epochs=2, batch_size=10, n_directions=3, readout="logistic")),  # a short last batch
        (25, dict(max_queries=400, batch_size=8, estimator="antithetic", n_directions=2, mapping="random")),
        (30, dict(max_queries=2000, max_epochs=1, batch_size=30, n_directions=4, readout="logistic")),
        (37, dict(max_queries=900, batch_size=10, n_directions=2, views=3)),  # views in the readout and predict
        (30, dict(max_epochs=1, batch_size=10, n_directions=2, readout="mapping", views=6)),  # predict only
    ],
)
def test_plan_equals_what_fit_and_predict_ask_for(n, options):
    X, y = DATA.data[:n], DATA.target[:n]
    model = DemoModel((1, 8, 8), n_classes=6, random_state=1)
    clf = BARClassifier(model, random_state=0, **options)
    plan = plan_bar(clf, X, n_eval=12)
    clf.fit(X, y)
    clf.predict(DATA.data[100:112])
    assert plan.fit_queries == clf.queries_
    assert plan.queries_by_phase == {k: clf.ledger_.by_purpose.get(k, 0) for k in plan.queries_by_phase}
    assert plan.steps == clf.n_steps_


@pytest.mark.parametrize("views", [1, 3])
def test_plan_of_a_paid_run_matches_the_bill_and_the_servers_requests(views):
    X, y = DATA.data[:40], DATA.target[:40]
    demo = DemoModel((1, 8, 8), n_classes=6, random_state=0)
    with serve(demo) as server:
        api = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=server.api_key,
            model_id="demo",
            labels=list(demo.labels),
            input_shape=(1, 8, 8),
            batch_size=16,
            price_per_query=0.002,
            retry=FAST,
            use_cache=False,
        )
        clf = BARClassifier(
            api, max_queries=700, batch_size=10, n_directions=2, readout="logistic", views=views, random_state=0
        )
        plan = plan_bar(clf, X, n_eval=20, rate_limit=10)
        clf.fit(X, y)
        clf.predict(DATA.data[200:220])
        stats = server.stats()
        api.close()
    led, requests = api.ledger, stats.requests
    assert led.billed == stats.billed  # every view the server answered is on the ledger
    assert plan.max_batch == 16 and plan.price_per_query == 0.002
    # no cache: the plan is the bill, to the image and to the request
    assert led.billed == plan.queries and led.cache_hits == 0
    assert plan.queries_by_phase["readout"] == 40 * views and plan.queries_by_phase["predict"] == 20 * views
    assert requests == plan.requests
    assert led.cost == pytest.approx(plan.dollars, rel=1e-12)
    assert plan.hours == pytest.approx(plan.requests / 10 / 3600)
    text = str(plan)
    assert "mapping" in text and "readout" in text and f"{plan.queries:,}" in text and "$" in text


def test_plan_refuses_what_fit_refuses_and_checks_its_arguments():
    X = DATA.data[:30]
    clf = BARClassifier(DemoModel((1, 8, 8), n_classes=6), max_queries=50, batch_size=10, n_directions=5)
    with pytest.raises(InvalidInputError, match="max_queries=50"):
        plan_bar(clf, X)
    with pytest.raises(InvalidInputError, match="max_queries=50"):
        clf.fit(X, DATA.target[:30])
    ok = BARClassifier(DemoModel((1, 8, 8), n_classes=6), max_queries=500)
    for kw, name in (
        ({"n_eval": -1}, "n_eval"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"max_batch": 0}, "max_batch"),
        ({"price_per_query": -1.0}, "price_per_query"),
    ):
        with pytest.raises(InvalidInputError, match=name):
            plan_bar(ok, X, **kw)
    assert np.isfinite(plan_bar(ok, X, price_per_query=0.001).dollars)


def test_bar_plan_command_prints_the_same_plan(capsys):
    from bar_sdk.cli import main
    from bar_sdk.cli.plan import _ShapeOnly

    argv = [
        "plan",
        "--samples",
        "60",
        "--image-shape",
        "1,8,8",
        "--source-shape",
        "3,32,32",
        "--classes",
        "10",
        "--max-queries",
        "3000",
        "--eval",
        "15",
        "--price",
        "0.001",
        "--rate",
        "5",
        "--max-batch",
        "32",
        "--views",
        "3",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    clf = BARClassifier(_ShapeOnly((3, 32, 32), 10), max_queries=3000, views=3)
    plan = plan_bar(
        clf, np.zeros((60, 1, 8, 8), np.float32), n_eval=15, price_per_query=0.001, rate_limit=5, max_batch=32
    )
    assert f"total{plan.queries:>19,}{plan.requests:>12,}" in out and f"${plan.dollars:,.2f}" in out
    assert f"readout{plan.queries_by_phase['readout']:>17,}" in out and plan.queries_by_phase["readout"] == 60 * 3
    assert main(["plan", "--max-queries", "5"]) == 2 and "max_queries=5" in capsys.readouterr().err


def test_audit_plan_bounds_what_an_audit_spends_through_an_api():
    import bar_sdk
    from bar_sdk.plan import plan_audit

    demo = DemoModel((1, 8, 8), n_classes=4, random_state=2)
    x = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    y = demo.predict_proba(x).argmax(axis=1)
    with serve(demo) as server:
        api = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=server.api_key,
            model_id="demo",
            labels=list(demo.labels),
            input_shape=(1, 8, 8),
            batch_size=4,
            price_per_query=0.01,
            retry=FAST,
            use_cache=False,
        )
        plan = plan_audit(api, len(x), eps=[0.02, 0.2], max_queries=30, rate_limit=5)
        report = bar_sdk.audit(api, x, y, eps=[0.02, 0.2], max_queries=30)
        requests = server.stats().requests
        api.close()
    assert set(plan.queries_by_phase) == {"square@0.02", "square@0.2", "simba@0.02", "simba@0.2"}
    assert plan.queries == 4 * 6 * 30 and plan.dollars == pytest.approx(plan.queries * 0.01)
    spent = {
        f"{name}@{e:g}": r.total_queries
        for name, runs in report.results.items()
        for e, r in zip(report.eps, runs, strict=True)
    }
    assert all(spent[k] <= plan.queries_by_phase[k] for k in spent)
    assert api.ledger.billed == report.total_queries <= plan.queries
    assert requests <= plan.requests
    with pytest.raises(InvalidInputError, match="max_queries"):
        plan_audit(api, 3, max_queries=0)


def test_bar_plan_audit_command(capsys):
    from bar_sdk.cli import main

    assert (
        main(
            [
                "plan",
                "--audit",
                "--samples",
                "100",
                "--source-shape",
                "3,32,32",
                "--classes",
                "10",
                "--eps",
                "0.01,0.03",
                "--max-queries",
                "500",
                "--price",
                "0.001",
                "--max-batch",
                "16",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "square@0.01" in out and "simba@0.03" in out and f"{4 * 100 * 500:,}" in out and "$200.00" in out
