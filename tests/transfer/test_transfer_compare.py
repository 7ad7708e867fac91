"""compare(): BAR against transfer-learning baselines on one split; LocalTransferClassifier."""

import numpy as np
import pytest
from _extras import reason

torch = pytest.importorskip("torch", reason=reason("torch"))

from _models import fresh_linear  # noqa: E402
from _transfer_models import SPOILED_SPLITS, Counting, breast_cancer, cnn, spoiled_split  # noqa: E402

from bar_sdk import InvalidInputError  # noqa: E402
from bar_sdk.transfer import LocalTransferClassifier, compare  # noqa: E402


def _weights(model):
    return [p.detach().clone() for p in model.module.parameters()]


@pytest.fixture(scope="module")
def table():
    Xa, Xb, ya, yb = breast_cancer()
    before = _weights(cnn())
    out = compare(Xa, ya, Xb, yb, model=cnn(), local_model=cnn(), max_queries=3000, epochs=5, random_state=0)
    return out, before


def test_one_row_per_method_with_every_column(table):
    out, _ = table
    methods = [r["method"] for r in out.rows]
    assert methods == ["BAR (black box)", "white-box reprogramming", "linear probe", "fine-tuning", "from scratch"]
    for r in out.rows:
        for key in ("accuracy", "balanced_accuracy", "auc"):
            assert 0.0 <= r[key] <= 1.0
        assert r["wall_time"] > 0
    assert out.row("BAR (black box)")["model"] == "black box"
    assert {out.row(m)["model"] for m in methods[1:]} == {"local"}
    md = out.to_markdown()
    assert md.count("\n") == len(methods) + 2 and "fine-tuning" in md


def test_queries_column_is_what_each_method_spent(table):
    out, _ = table
    assert 0 < out.row("BAR (black box)")["queries"] <= 3000
    assert out.row("white-box reprogramming")["queries"] > 0  # its gradient calls on the local model
    for m in ("linear probe", "fine-tuning", "from scratch"):
        assert out.row(m)["queries"] == 0  # the torch module is read directly, never queried


def test_trained_baselines_learn_the_task_and_leave_the_users_model_alone(table):
    out, before = table
    majority = max(np.mean(breast_cancer()[3]), 1 - np.mean(breast_cancer()[3]))
    assert out.row("fine-tuning")["accuracy"] > majority + 0.1
    assert out.row("linear probe")["accuracy"] > majority + 0.1
    for p, q in zip(before, _weights(cnn()), strict=False):
        assert torch.equal(p, q)


def test_scratch_starts_from_fresh_weights():
    Xa, Xb, ya, yb = breast_cancer()
    fine = LocalTransferClassifier(cnn(), mode="finetune", epochs=1, learning_rate=1e-12, random_state=0).fit(Xa, ya)
    scratch = LocalTransferClassifier(cnn(), mode="scratch", epochs=1, learning_rate=1e-12, random_state=0).fit(Xa, ya)
    conv = [p for p in cnn().module.parameters()][0]
    assert torch.allclose([p for p in fine.net_.module.parameters()][0], conv)
    assert not torch.allclose([p for p in scratch.net_.module.parameters()][0], conv)


def test_probe_on_a_model_without_torch_uses_counted_scores():
    Xa, Xb, ya, yb = breast_cancer()
    counting = Counting(fresh_linear())
    probe = LocalTransferClassifier(counting, mode="probe").fit(Xa, ya)
    assert probe.queries_ == len(ya) == counting.seen
    proba = probe.predict_proba(Xb)
    assert proba.shape == (len(yb), 2) and np.allclose(proba.sum(1), 1.0)
    assert probe.ledger_.by_purpose == {"train": len(ya), "predict": len(yb)}


def test_refusals_come_before_any_query():
    Xa, Xb, ya, yb = breast_cancer()
    counting = Counting(fresh_linear())
    with pytest.raises(InvalidInputError, match="torch"):
        LocalTransferClassifier(counting, mode="finetune").fit(Xa, ya)
    with pytest.raises(InvalidInputError, match="mode"):
        LocalTransferClassifier(counting, mode="distill").fit(Xa, ya)
    with pytest.raises(InvalidInputError, match="nothing to compare"):
        compare(Xa, ya, Xb, yb)
    with pytest.raises(InvalidInputError, match="predict_proba"):
        compare(Xa, ya, Xb, yb, model=counting, methods={"bad": object()})
    assert counting.seen == 0


def test_methods_can_be_added_and_removed():
    from sklearn.linear_model import LogisticRegression

    Xa, Xb, ya, yb = breast_cancer()
    out = compare(
        Xa,
        ya,
        Xb,
        yb,
        local_model=fresh_linear(),
        methods={
            "logistic regression on raw features": LogisticRegression(max_iter=5000),
            "white-box reprogramming": None,
        },
    )
    assert [r["method"] for r in out.rows] == ["linear probe", "logistic regression on raw features"]
    assert out.row("logistic regression on raw features")["model"] == "-"


def test_transfer_imports_without_torch():
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name == 'torch' or name.startswith('torch.'):\n"
        "        raise ImportError('torch is blocked')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        f"sys.path.insert(0, {root!r})\n"
        "from bar_sdk.transfer import transfer_matrix, compare, warm_start_study, EnsembleModel\n"
        "from bar_sdk.attacks.mifgsm import MIFGSM\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("bad,match", SPOILED_SPLITS + [("second-bar", r"RandomGradientEstimator\.n_directions=0")])
def test_compare_checks_the_test_split_and_every_bar_method_before_any_query(bad, match):
    from bar_sdk import BARClassifier
    from bar_sdk.zo import RandomGradientEstimator

    Xa, Xb, ya, yb = breast_cancer()
    counting = Counting(fresh_linear())
    methods = {}
    Xb, yb = spoiled_split(bad, Xb, yb)
    if bad == "second-bar":
        spoiled = RandomGradientEstimator(5, 0.1)
        spoiled.n_directions = 0
        methods = {"BAR, my estimator": BARClassifier(counting, max_queries=800, estimator=spoiled)}
    with pytest.raises(InvalidInputError, match=match):
        compare(Xa, ya, Xb, yb, model=counting, max_queries=800, methods=methods)
    assert counting.seen == 0


def test_methods_on_the_paid_model_are_fitted_last_and_rows_keep_their_order():
    from sklearn.linear_model import LogisticRegression

    class Broken(LogisticRegression):
        def fit(self, X, y):
            raise RuntimeError("a free method that fails")

    Xa, Xb, ya, yb = breast_cancer()
    counting = Counting(fresh_linear())
    with pytest.raises(RuntimeError, match="a free method"):
        compare(Xa, ya, Xb, yb, model=counting, max_queries=800, methods={"broken": Broken()})
    assert counting.seen == 0  # the black box had not been asked yet
    out = compare(
        Xa, ya, Xb, yb, model=counting, max_queries=800, methods={"logistic": LogisticRegression(max_iter=5000)}
    )
    assert [r["method"] for r in out.rows] == ["BAR (black box)", "logistic"]
