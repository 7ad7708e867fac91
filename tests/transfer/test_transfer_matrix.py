"""transfer_matrix: shape, white-box diagonal, success over target-correct inputs only, 8-bit images, counts."""

import json

import numpy as np
import pytest
from _extras import requires
from _models import fresh_linear
from _transfer_models import Counting, cnn, digits, mlp

from bar_sdk import InvalidInputError, QueryBudgetExceeded
from bar_sdk.attacks import FGSM, PGD
from bar_sdk.attacks.mifgsm import MIFGSM
from bar_sdk.transfer import EnsembleModel, transfer_matrix

pytestmark = requires("torch")  # the digits data and the source models come from bar_sdk.adapters.nets

EPS = 32 / 255
ATTACKS = {
    "fgsm": FGSM(None, eps=EPS),
    "pgd": PGD(None, eps=EPS, steps=5, random_state=0),
    "mifgsm": MIFGSM(None, eps=EPS, steps=5, diversity_prob=0.5, random_state=0),
}


class Constant:
    """A 'model' that always answers class 0: right only on the zeros, and never fooled."""

    n_classes, input_shape = 10, (1, 16, 16)

    def predict_proba(self, x):
        out = np.full((len(x), 10), 0.01)
        out[:, 0] = 0.91
        return out


def _data(n=60):
    x, y = digits()
    return x[-n:], y[-n:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    x, y = _data()
    out = tmp_path_factory.mktemp("matrix")
    api = Counting(fresh_linear())
    constant = Counting(Constant())
    sources = {"cnn": cnn(), "mlp": mlp(), "cnn+mlp": [cnn(), mlp()]}
    targets = {"cnn": cnn(), "mlp": mlp(), "api": api, "constant": constant}
    result = transfer_matrix(sources, targets, ATTACKS, x, y, out_dir=out)
    return result, x, y, out, api, constant


def test_matrix_is_indexed_attack_source_target(run):
    result, x, y, *_ = run
    assert result.rates.shape == (3, 3, 4)
    assert result.attacks == ("fgsm", "pgd", "mifgsm")
    assert result.sources == ("cnn", "mlp", "cnn+mlp") and result.targets == ("cnn", "mlp", "api", "constant")
    assert result.adversarial.shape == (3, 3) + x.shape
    assert result.rate("pgd", "mlp", "api") == result.rates[1, 1, 2]
    with pytest.raises(InvalidInputError, match="target"):
        result.rate("pgd", "mlp", "nope")


def test_diagonal_is_the_white_box_rate(run):
    result, *_ = run
    assert result.white_box.tolist() == [
        [True, False, False, False],
        [False, True, False, False],
        [False, False, False, False],
    ]
    for a in range(3):
        for s in range(2):
            assert result.rates[a, s, s] == pytest.approx(result.source_rates[a, s])
    assert np.all(result.source_rates[1:, :2] > 0.8)  # iterative white-box attacks fool their own source


def test_success_counts_only_inputs_the_target_got_right(run):
    result, x, y, *_ = run
    t = result.targets.index("constant")
    assert result.n_correct[t] == np.sum(y == 0)
    assert np.all(result.rates[:, :, t] == 0.0)  # never fooled, though it is wrong on most adversarial inputs
    assert result.clean_accuracy[t] == pytest.approx(np.mean(y == 0))
    # and the same count recomputed by hand on another target
    api = fresh_linear()
    correct = api.predict_proba(x).argmax(1) == y
    a, s = 2, 0
    fooled = (api.predict_proba(result.adversarial[a, s] / 255.0).argmax(1) != y) & correct
    assert result.fooled[a, s, 2] == fooled.sum()
    assert result.rates[a, s, 2] == pytest.approx(fooled.sum() / correct.sum())


def test_targets_receive_8_bit_images_inside_the_ball(run):
    result, x, y, out, api, constant = run
    assert result.adversarial.dtype == np.uint8
    for batch in api.batches + constant.batches:
        assert np.array_equal(np.round(batch * 255.0), batch * 255.0)
    assert np.all(result.max_linf <= EPS + 1e-9)
    assert np.all(result.max_linf[:, :2] > EPS - 1.5 / 255)  # the attacks used their budget
    saved = np.load(out / "adversarial" / "mifgsm__cnn_mlp.npz")
    assert saved["images"].dtype == np.uint8 and np.array_equal(saved["images"], result.adversarial[2, 2])


def test_every_target_query_is_counted(run):
    result, x, y, out, api, constant = run
    n = len(y)
    assert api.seen == constant.seen == n * (1 + 3 * 3)
    assert result.target_queries.tolist() == [n * 10] * 4


def test_reports_are_written(run):
    result, x, y, out, *_ = run
    rows = (out / "transfer_matrix.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3 * 3 * 4 and rows[0].startswith("attack,source,target,success_rate")
    doc = json.loads((out / "transfer_matrix.json").read_text())
    assert np.allclose(np.array(doc["rates"], dtype=float), result.rates)
    assert (out / "transfer_matrix.png").stat().st_size > 5000


def test_refused_before_any_query():
    x, y = _data(20)
    src, tgt = Counting(fresh_linear()), Counting(fresh_linear())
    src.log_proba_gradient = src.model.log_proba_gradient
    with pytest.raises(InvalidInputError, match="max_target_queries"):
        transfer_matrix({"s": src}, {"t": tgt}, ATTACKS, x, y, max_target_queries=20 * 3)
    with pytest.raises(InvalidInputError, match="input_shape"):
        transfer_matrix({"s": src}, {"t": tgt}, ATTACKS, x[:, :, :8, :8], y)
    with pytest.raises(InvalidInputError, match="n_classes"):
        transfer_matrix({"s": src}, {"t": tgt, "c": Counting(_TwoClass())}, ATTACKS, x, y)
    with pytest.raises(InvalidInputError, match="eps"):
        transfer_matrix({"s": src}, {"t": tgt}, {"bad": PGD(None, eps=-1.0)}, x, y)
    with pytest.raises(InvalidInputError, match="gradients"):  # an ensemble without gradients is a black box
        transfer_matrix({"e": [Counting(fresh_linear()), src]}, {"t": tgt}, ATTACKS, x, y)
    assert src.seen == tgt.seen == 0


def test_bad_out_dir_is_refused_before_any_query(tmp_path):
    x, y = _data(20)
    src, tgt = Counting(fresh_linear()), Counting(fresh_linear())
    gradients = []
    src.log_proba_gradient = lambda xb, loss: gradients.append(len(xb)) or src.model.log_proba_gradient(xb, loss)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out_dir in (blocker, 3):
        with pytest.raises(InvalidInputError, match="out_dir"):
            transfer_matrix({"s": src}, {"t": tgt}, ATTACKS, x, y, out_dir=out_dir)
    assert src.seen == tgt.seen == sum(gradients) == 0
    assert blocker.read_text() == "not a folder"


class _TwoClass:
    n_classes, input_shape = 2, (1, 16, 16)

    def predict_proba(self, x):
        return np.full((len(x), 2), 0.5)


def test_ensemble_gradient_matches_finite_differences():
    # two float64 models (exact arithmetic): the digits softmax and a copy looking at mirrored pixels
    first, second = fresh_linear(), fresh_linear()
    second.w = second.w.reshape(10, 16, 16)[:, :, ::-1].reshape(10, -1).copy()
    ens = EnsembleModel({"a": first, "b": second}, weights=[2.0, 1.0])
    x, y = _data(3)
    x = (0.25 + 0.5 * x).astype(np.float64)  # inside (0, 1): both finite-difference points are images
    direction = np.random.default_rng(0).standard_normal(x.shape)
    rows = np.arange(len(y))

    def loss_fn(logp):  # the cross-entropy of the true class
        g = np.zeros_like(logp)
        g[rows, y] = -1.0
        return float(-logp[rows, y].sum()), g

    def loss_at(z):
        return -np.log(ens.predict_proba(z))[rows, y].sum()

    loss, grad = ens.log_proba_gradient(x, loss_fn)
    assert loss == pytest.approx(loss_at(x), rel=1e-6)
    h = 1e-5
    numeric = (loss_at(x + h * direction) - loss_at(x - h * direction)) / (2 * h)
    assert numeric == pytest.approx(float(np.vdot(grad.astype(np.float64), direction)), rel=1e-3)


def test_ensemble_is_the_normalised_mean_of_log_probabilities():
    x, _ = _data(5)
    ens = EnsembleModel([cnn(), mlp()])
    mixed = 0.5 * np.log(cnn().predict_proba(x)) + 0.5 * np.log(mlp().predict_proba(x))
    expected = np.exp(mixed) / np.exp(mixed).sum(1, keepdims=True)
    assert np.allclose(ens.predict_proba(x), expected)
    assert hasattr(ens, "log_proba_gradient")
    assert not hasattr(EnsembleModel([cnn(), fresh_linear().__class__.__new__(Constant)]), "log_proba_gradient")
    with pytest.raises(InvalidInputError, match="input_shape"):
        EnsembleModel([cnn(), _TwoClass()])


def test_ensemble_counts_every_image_sent_to_every_member_by_name():

    a, b = fresh_linear(), fresh_linear()
    ens = EnsembleModel({"a": a, "b": b})
    x, y = _data(5)
    ens.predict_proba(x)
    assert ens.ledger.by_purpose == {"a": 5, "b": 5} and ens.queries == 10 == a.seen + b.seen
    ens.log_proba_gradient(x, lambda logp: (0.0, np.zeros_like(logp)))  # a reading pass and a backward pass
    assert ens.ledger.by_purpose == {"a": 15, "b": 15} and ens.queries == a.seen + b.seen == 30
    result = PGD(ens, eps=0.05, steps=3, random_state=0).run(x, y)
    assert ens.queries == a.seen + b.seen > 2 * result.total_queries  # one ensemble image costs every member


def test_ensemble_budget_refuses_a_call_whole_and_non_finite_images_are_never_sent():
    a, b = fresh_linear(), fresh_linear()
    ens = EnsembleModel([a, b], max_queries=15)
    x, _ = _data(5)
    ens.predict_proba(x)
    with pytest.raises(QueryBudgetExceeded):
        ens.predict_proba(x)  # 10 more member images would cross 15: neither member is asked
    assert a.seen == b.seen == 5 and ens.queries == 10
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        ens.predict_proba(bad)
    assert a.seen == b.seen == 5
    with pytest.raises(InvalidInputError, match="max_queries=0"):
        EnsembleModel([a, b], max_queries=0)


def test_labels_follow_the_one_rule_whole_floats_accepted_others_refused_before_any_query():
    """transfer_matrix, an attack and audit read y by one rule (bar_sdk.contract.check_class_labels)."""
    x, y = _data(8)
    api = Counting(Constant())
    small = {"fgsm": FGSM(None, eps=EPS)}
    as_int = transfer_matrix({"cnn": cnn()}, {"api": api}, small, x, y)
    as_float = transfer_matrix({"cnn": cnn()}, {"api": Counting(Constant())}, small, x, y.astype(np.float64))
    np.testing.assert_array_equal(as_int.rates, as_float.rates)
    seen = api.seen
    for bad, match in ((y + 0.5, "non-integer"), (y.astype(str), "dtype"), (y[:-1], "shape"), (y + 10, "0..9")):
        with pytest.raises(InvalidInputError, match=match):
            transfer_matrix({"cnn": cnn()}, {"api": api}, small, x, bad)
        with pytest.raises(InvalidInputError, match=match):
            FGSM(cnn(), eps=EPS).run(x, bad)
    assert api.seen == seen  # the refused calls sent nothing


def test_a_heatmap_without_matplotlib_is_refused_before_any_query(run, tmp_path, monkeypatch):
    """The one rule for a missing matplotlib (bar_sdk.reporting.plots): refused at the boundary, the extra named."""
    import sys

    from bar_sdk.errors import MissingDependencyError

    result, x, y, *_ = run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    api = Counting(Constant())
    with pytest.raises(InvalidInputError, match=r"out_dir=.*matplotlib.*bar-sdk\[report\]"):
        transfer_matrix(
            {"cnn": cnn()}, {"api": api}, {"fgsm": FGSM(None, eps=EPS)}, x[:4], y[:4], out_dir=tmp_path / "m"
        )
    assert api.seen == 0 and not (tmp_path / "m").exists()
    with pytest.raises(MissingDependencyError, match=r"bar-sdk\[report\]"):
        result.plot(tmp_path / "heatmap.png")
    with pytest.raises(InvalidInputError, match="matplotlib"):
        result.save(tmp_path / "saved")
    assert not (tmp_path / "saved").exists()
