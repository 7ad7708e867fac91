"""bar_sdk.audit and ``bar audit``: counted runs, early refusals, a readable report."""

import json
import os

import numpy as np
import pytest
from _attack_models import Counting, LabelOnly, digits, held_out, mlp_digits
from _extras import reason, requires

from bar_sdk.attacks import PGD, SquareAttack, UniversalPerturbation
from bar_sdk.audit import audit
from bar_sdk.errors import InvalidInputError

NET = mlp_digits()
X, Y = held_out(20, NET)


@requires("report")  # the report's plots
def test_audit_counts_every_query_and_writes_a_report(tmp_path):
    x_all, y_all = digits()
    xs, ys = x_all[1200:1230], y_all[1200:1230]  # includes images the model gets wrong
    counter = Counting(NET)
    report = audit(
        counter,
        xs,
        ys,
        attacks=["square", "simba"],
        eps=[0.05, 0.2],
        max_queries=100,
        out_dir=tmp_path,
        price_per_query=0.002,
    )
    assert report.total_queries == counter.seen
    assert report.cost == pytest.approx(0.002 * counter.seen)
    truth = NET.predict_proba(xs).argmax(1) == ys
    assert report.clean_accuracy == pytest.approx(truth.mean())
    for k in range(2):
        per_attack = [report.robust_accuracy[name][k] for name in ("square", "simba")]
        assert report.robust_accuracy["any attack"][k] <= min(per_attack)
    assert report.robust_accuracy["any attack"][1] < report.robust_accuracy["any attack"][0] < report.clean_accuracy
    for key in ("json", "markdown", "robust_accuracy_plot", "success_plot", "examples_plot"):
        assert (tmp_path / report.files[key].split("/")[-1]).stat().st_size > 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["total_queries"] == counter.seen and doc["eps"] == [0.05, 0.2]
    assert doc["robust_accuracy"]["any attack"] == report.robust_accuracy["any attack"]
    for example in doc["examples"]:  # every example shown really fools the model
        i = example["index"]
        run = report.results[example["attack"]][report.eps.index(example["eps"])]
        assert NET.predict_proba(run.x_adv[i : i + 1]).argmax(1)[0] == example["adversarial_label"] != ys[i]
    text = (tmp_path / "report.md").read_text()
    assert "In plain words" in text and "examples.png" in text and f"{counter.seen:,}" in text


def test_auto_attacks_follow_what_the_model_answers():
    label_only = audit(LabelOnly(NET), X[:5], Y[:5], eps=[0.2], max_queries=40)
    assert set(label_only.results) == {"hopskipjump", "rays"}
    scores = audit(NET, X[:5], Y[:5], eps=[0.2], max_queries=40)
    assert set(scores.results) == {"square", "simba", "pgd"}  # the MLP offers gradients
    assert scores.results["pgd"][0].access == "gradient"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=[0.1, 1.5]), "eps=1.5"),
        (dict(eps=[]), "eps=..; expected at least one"),
        (dict(attacks=["square", "bogus"]), "attacks='bogus'"),
        (dict(attacks=["zoo"]), "norm l2 only"),
        (dict(attacks=3), "attacks=3; expected 'auto'"),
        (dict(attacks=["square", SquareAttack]), "attacks=.* holds <class"),  # the class, not an instance
        (dict(attacks={"square": 1}), "attacks=.*; expected 'auto'"),
        (dict(max_queries=0), "max_queries=0"),
        (dict(price_per_query=-1.0), "price_per_query=-1.0"),
        (dict(verbose="no"), "verbose='no'; expected True or False"),
    ],
)
def test_bad_arguments_cost_nothing(kwargs, match):
    counter = Counting(NET)
    with pytest.raises(InvalidInputError, match=match.replace("..", r"\[\]")):
        audit(counter, X, Y, **{"attacks": ["square"], "eps": [0.1], **kwargs})
    assert counter.seen == 0


class BytesPath(os.PathLike):
    def __fspath__(self):
        return b"report"


def test_bad_out_dir_is_refused_before_any_query(tmp_path):
    counter = Counting(NET)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out_dir, match in [
        (blocker, "out_dir=.*a_file"),
        (blocker / "below", "out_dir=.*below"),
        (3, "out_dir=3"),
        (BytesPath(), "out_dir=<.*BytesPath.*; expected a folder path"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            audit(counter, X, Y, attacks=["square"], eps=[0.1], max_queries=5, out_dir=out_dir)
    assert counter.seen == 0
    with pytest.raises(InvalidInputError, match="eps"):  # a refused call leaves no folder behind
        audit(counter, X, Y, attacks=["square"], eps=[2.0], out_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists() and counter.seen == 0


def test_an_attack_whose_budget_cannot_pay_for_its_run_is_refused_before_any_attack_runs():
    counter = Counting(NET)
    universal = UniversalPerturbation(counter, max_queries=100, n_directions=2, batch_images=4, max_total_queries=20)
    with pytest.raises(InvalidInputError, match="max_total_queries=20; .*expected at least 24"):
        audit(counter, X[:4], Y[:4], attacks=["square", universal], eps=[0.1], max_queries=20)
    assert counter.seen == 0


def test_label_only_model_with_a_score_attack_costs_nothing():
    counter = Counting(NET)
    with pytest.raises(InvalidInputError, match="label_only=True"):
        audit(LabelOnly(counter), X, Y, attacks=["hopskipjump", "square"], eps=[0.1])
    assert counter.seen == 0


def test_attack_instances_keep_their_settings():
    square = SquareAttack(NET, eps=0.5, max_queries=30, p_init=0.3, random_state=1)
    report = audit(NET, X[:6], Y[:6], attacks=[square, PGD(NET, steps=5)], eps=[0.1, 0.2])
    runs = report.results["SquareAttack"]
    assert [r.eps for r in runs] == [0.1, 0.2]
    assert all(r.queries.max() <= 30 for r in runs)


@requires("report")
def test_cli_audits_a_saved_torch_module(tmp_path):
    torch = pytest.importorskip("torch", reason=reason("torch"))
    from bar_sdk.adapters.nets import train_classifier
    from bar_sdk.cli import main

    x, y = digits()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    train_classifier(net, x[:1200], y[:1200], epochs=5, random_state=0)
    torch.save(net, tmp_path / "net.pt")
    np.savez(tmp_path / "data.npz", images=(x[1200:1215] * 255).round().astype(np.uint8), labels=y[1200:1215])
    out = tmp_path / "report"
    code = main(
        [
            "audit",
            "--model",
            str(tmp_path / "net.pt"),
            "--data",
            str(tmp_path / "data.npz"),
            "--attacks",
            "hopskipjump,rays",
            "--eps",
            "0.1",
            "--max-queries",
            "50",
            "--out",
            str(out),
            "--label-only",
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_samples"] == 15 and set(doc["runs"]) == {"hopskipjump", "rays"}
    assert all(run["total_queries"] <= 15 * 50 for runs in doc["runs"].values() for run in runs)
    assert (out / "report.md").exists()
    with pytest.raises(InvalidInputError, match="label_only=True"):
        main(
            [
                "audit",
                "--model",
                str(tmp_path / "net.pt"),
                "--data",
                str(tmp_path / "data.npz"),
                "--attacks",
                "square",
                "--label-only",
                "--out",
                str(out),
                "--quiet",
            ]
        )


def test_cli_refuses_two_models_and_missing_data():
    from bar_sdk.cli import main

    with pytest.raises(InvalidInputError, match="exactly one"):
        main(["audit", "--model", "digits-cnn", "--remote-preset", "clarifai", "--quiet"])
    with pytest.raises(InvalidInputError, match="--data is required"):
        main(["audit", "--model", "net.pt", "--quiet"])


def test_an_attack_instance_runs_under_the_audit_cap_and_the_report_says_what_was_applied(tmp_path):
    counter = Counting(NET)
    square = SquareAttack(counter, eps=0.1, max_queries=500, random_state=0)
    report = audit(counter, X[:4], Y[:4], attacks=[square], eps=[0.01], max_queries=10, out_dir=tmp_path)
    run = report.results["SquareAttack"][0]
    assert run.queries.max() <= 10 and counter.seen <= 4 * 10 and report.total_queries == counter.seen
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["max_queries_per_image"] == 10 and doc["runs"]["SquareAttack"][0]["max_queries_per_image"] == 10
    assert square.max_queries == 500  # the instance given is left as it was
    smaller = audit(counter, X[:2], Y[:2], attacks=[square.clone(max_queries=5)], eps=[0.01], max_queries=10)
    assert smaller.results["SquareAttack"][0].queries.max() <= 5 and smaller.caps == {"SquareAttack": 5}


def test_an_attack_built_on_another_model_is_refused_before_any_query():
    audited, other = Counting(NET), Counting(NET)
    with pytest.raises(
        InvalidInputError,
        match=r"attacks\[1\]=SquareAttack was built on model=Counting, not on the "
        r"audited model",
    ):
        audit(audited, X[:4], Y[:4], attacks=["simba", SquareAttack(other, max_queries=20)], eps=[0.1], max_queries=20)
    assert audited.seen == 0 and other.seen == 0


@pytest.mark.parametrize("spec", ["pgd", "instance"])
def test_white_box_attacks_count_their_gradient_calls_under_the_audit_cap(spec):
    from _attack_models import CountedSoftmax

    model = CountedSoftmax()
    x, y = held_out(4, model)
    model.seen = 0  # choosing the images is not part of the audit
    attack = "pgd" if spec == "pgd" else PGD(model, steps=40)
    report = audit(model, x, y, attacks=[attack], eps=[0.01], max_queries=10)
    run = next(iter(report.results.values()))[0]
    assert run.queries.max() <= 10 and model.seen == run.total_queries <= 4 * 10


def test_a_report_without_matplotlib_is_refused_before_any_query(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    counter = Counting(NET)
    with pytest.raises(InvalidInputError, match=r"out_dir=.*matplotlib.*bar-sdk\[report\]"):
        audit(counter, X[:3], Y[:3], attacks=["square"], eps=[0.1], max_queries=10, out_dir=tmp_path / "r")
    assert counter.seen == 0 and not (tmp_path / "r").exists()
    assert audit(counter, X[:3], Y[:3], attacks=["square"], eps=[0.1], max_queries=10).total_queries == counter.seen


def test_the_json_results_are_written_before_any_plot_and_survive_a_failing_one(tmp_path, monkeypatch):
    import bar_sdk.reporting.audit as audit_report

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(audit_report, "_plot_success", broken)
    counter = Counting(NET)
    report = audit(counter, X[:4], Y[:4], attacks=["square"], eps=[0.1], max_queries=30, out_dir=tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["total_queries"] == counter.seen == report.total_queries
    assert "success_plot" not in report.files and "success_plot" not in doc["files"]
    assert (tmp_path / "robust_accuracy_vs_eps.png").stat().st_size > 0
    assert "success_vs_queries.png" not in (tmp_path / "report.md").read_text()
