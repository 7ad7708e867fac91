"""Label mappings and losses."""

import numpy as np
import pytest

from bar_sdk import InvalidInputError
from bar_sdk.losses import (
    balanced_weights,
    cross_entropy,
    focal_loss,
    loss_and_logp_gradient,
    normalise,
    readout_loss_and_logp_gradient,
)
from bar_sdk.mapping import (
    FOLD_TOL,
    READOUT_C_GRID,
    CrossFittedReadout,
    LogisticReadout,
    _fit_linear,
    choose_readout_C,
    frequency_mapping,
    random_mapping,
    readout_folds,
    source_frequencies,
)


def test_frequency_mapping_follows_the_model():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    scores = rng.random((100, 10)) * 0.1
    scores[y == 0, 7] += 1.0  # class 0 looks like source 7, class 1 like source 2
    scores[y == 1, 2] += 1.0
    mapping = frequency_mapping(source_frequencies(scores, y, 2), per_class=3)
    assert mapping.sources[0][0] == 7 and mapping.sources[1][0] == 2
    assert len(set(mapping.sources.ravel())) == 6  # distinct source labels


def test_rows_with_no_score_vote_for_no_label():
    # class 0: two rows point at source 3, four came back empty (nothing above an API's threshold)
    scores = np.zeros((8, 5))
    scores[:2, 3] = 0.9
    scores[6:, 4] = 0.7
    y = np.array([0] * 6 + [1] * 2)
    freq = source_frequencies(scores, y, 2)
    assert freq[:, 0].argmax() == 3 and freq[0, 0] == 0.0
    assert frequency_mapping(freq, per_class=1).sources.ravel().tolist() == [3, 4]
    from bar_sdk.reprogram import _evidence  # the iterative mapping's per-batch counts

    assert _evidence(scores, y, 2)[:, 0].tolist() == [0, 0, 0, 2, 0]


def test_tie_break_never_outweighs_a_count_in_large_classes():
    # 4000 samples: source 0 on top 2001 times with low scores, source 1 1999 times with high ones
    y = np.zeros(4000, int)
    scores = np.zeros((4000, 3))
    scores[:2001, 0], scores[:2001, 1] = 0.34, 0.33
    scores[2001:, 1], scores[2001:, 0] = 1.0, 0.0
    assert frequency_mapping(source_frequencies(scores, y, 1), per_class=1).sources.ravel().tolist() == [0]
    # equal counts: the mean score decides
    scores[:2000, 0], scores[:2000, 1] = 0.34, 0.33
    scores[2000:, 1], scores[2000:, 0] = 1.0, 0.0
    assert frequency_mapping(source_frequencies(scores, y, 1), per_class=1).sources.ravel().tolist() == [1]


def test_target_scores_are_means_and_survive_top_k_zeros():
    mapping = random_mapping(10, 2, 2, np.random.default_rng(1))
    scores = np.zeros((1, 10))
    scores[0, mapping.sources[0][0]] = 0.8  # a top-1 API: one nonzero score
    t = mapping.target_scores(scores)
    assert t[0, 0] == pytest.approx(0.4) and t[0, 1] == 0.0
    p = normalise(t)
    assert p.argmax() == 0 and np.isfinite(p).all()
    np.testing.assert_allclose(
        mapping.target_scores(np.eye(10)) @ np.ones(2),
        np.full(10, 0.5) * np.isin(np.arange(10), mapping.sources.ravel()),
    )


def test_too_many_labels_per_class_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="labels_per_class=4"):
        random_mapping(10, 3, 4, np.random.default_rng(0))


def test_focal_loss_with_gamma_zero_is_cross_entropy_and_down_weights_easy_samples():
    p = np.array([[0.9, 0.1], [0.4, 0.6]])
    y = np.array([0, 0])
    w = np.ones(2)
    ce, _ = cross_entropy(p, y, w)
    np.testing.assert_allclose(ce, -np.log([0.9, 0.4]))
    fl, _ = focal_loss(p, y, w, 2.0)
    assert fl[0] / ce[0] < fl[1] / ce[1]  # the easy sample loses more of its weight


def test_balanced_weights():
    w = balanced_weights(np.array([0, 0, 0, 1]), 2)
    assert w[1] == pytest.approx(3 * w[0])
    assert (w * np.array([3, 1])).sum() == pytest.approx(4)


def _check_logp_gradient(value, logits, entries):
    """``value(z) -> (loss, dL/dlogp)``: its gradient, chained through log-softmax, against central differences."""
    _, g_logp = value(logits)
    # chain through log-softmax: dL/dz = g - p * sum(g)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    g_z = g_logp - p * g_logp.sum(1, keepdims=True)
    for i, j in entries:
        e = np.zeros_like(logits)
        e[i, j] = 1e-5
        num = (value(logits + e)[0] - value(logits - e)[0]) / 2e-5
        assert g_z[i, j] == pytest.approx(num, rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("loss,gamma", [("focal", 2.0), ("cross_entropy", 0.0)])
def test_white_box_loss_gradient_matches_finite_differences(loss, gamma):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 10))
    y = rng.integers(0, 3, 5)
    mapping = random_mapping(10, 3, 3, rng)
    w = balanced_weights(np.array([0, 1, 2, 2]), 3)

    def value(z):
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return loss_and_logp_gradient(np.exp(lp), mapping.matrix, y, w, loss, gamma)

    _check_logp_gradient(value, logits, [(0, 0), (1, 4), (3, 9), (4, 2)])


@pytest.mark.parametrize("loss,gamma", [("focal", 2.0), ("cross_entropy", 0.0)])
def test_readout_loss_gradient_matches_finite_differences(loss, gamma):
    """White-box training through a logistic readout (mapping="logistic"): the chain rule, checked numerically."""
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 10))
    y = np.array([0, 1, 2, 2, 1, 0])
    readout = LogisticReadout(rng.standard_normal((10, 3)), rng.standard_normal(3))
    w = balanced_weights(np.array([0, 1, 2, 2]), 3)

    def value(z):
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return readout_loss_and_logp_gradient(np.exp(lp), readout, y, w, loss, gamma)

    _check_logp_gradient(value, logits, [(0, 0), (1, 4), (3, 9), (5, 2)])


@pytest.mark.parametrize("k", [2, 3])
def test_logistic_readout_learns_a_rule_no_mapping_expresses(k):
    """The class is which of two source labels scores higher, scaled: a learned weighting, not a mean."""
    rng = np.random.default_rng(0)

    def draw(n):
        scores = rng.dirichlet(np.ones(6), size=n)
        ratio = np.log(scores[:, 0]) - 2.0 * np.log(scores[:, 1])
        return scores, np.digitize(ratio, np.quantile(ratio, np.linspace(0, 1, k + 1)[1:-1]))

    scores, y = draw(2000)
    readout = LogisticReadout.fit(scores, y, k)
    assert readout.coef.shape == (6, k) and readout.intercept.shape == (k,)
    test_scores, test_y = draw(2000)
    proba = readout.proba(test_scores)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert np.mean(proba.argmax(1) == test_y) > 0.9
    top1 = np.where(test_scores == test_scores.max(1, keepdims=True), test_scores, 0.0)  # top-1 answers
    assert np.all(np.isfinite(readout.proba(top1)))


def test_logistic_readout_refuses_labels_that_miss_a_class_or_rows():
    scores = np.random.default_rng(0).dirichlet(np.ones(4), size=10)
    with pytest.raises(InvalidInputError, match=r"every label 0..2"):
        LogisticReadout.fit(scores, np.arange(10) % 2, 3)
    with pytest.raises(InvalidInputError, match=r"y has shape \(9,\)"):
        LogisticReadout.fit(scores, np.arange(9) % 2, 2)


def _ratio_task(rng, n, noise=0.0):
    scores = rng.dirichlet(np.ones(6), size=n)
    ratio = np.log(scores[:, 0]) - np.log(scores[:, 1]) + noise * rng.standard_normal(n)
    return scores, (ratio > 0).astype(np.int64)


def test_cross_fitted_readout_reads_each_row_without_its_fold():
    """Row i's probabilities come from the readout fitted on the rows outside fold i % 5, nothing else."""
    rng = np.random.default_rng(0)
    scores, y = _ratio_task(rng, 60, noise=0.5)
    cf = CrossFittedReadout.fit(scores, y, 2, C=0.3)
    assert cf.C == 0.3 and cf.coefs.shape == (5, 6, 2)
    np.testing.assert_array_equal(cf.folds, readout_folds(60))
    rows = np.array([0, 7, 13, 59])
    for i, row in zip(rows, cf.proba(scores[rows], rows), strict=False):
        out = readout_folds(60) != i % 5
        coef, intercept = _fit_linear(np.log(scores[out]), y[out], 2, 0.3, FOLD_TOL)  # the fold fits' tolerance
        alone = LogisticReadout(coef, intercept, 0.3)
        np.testing.assert_allclose(row, alone.proba(scores[i : i + 1])[0], rtol=1e-10)
    # a refit keeps the folds and C
    again = cf.refit(scores[::-1].copy(), y[::-1].copy())
    assert again.C == cf.C and np.array_equal(again.folds, cf.folds)
    assert not np.allclose(again.coefs, cf.coefs)


@pytest.mark.parametrize("loss,gamma", [("focal", 2.0), ("cross_entropy", 0.0)])
def test_cross_fitted_readout_loss_gradient_matches_finite_differences(loss, gamma):
    """The chain rule through each row's own fold readout, checked numerically."""
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((6, 10))
    y = np.array([0, 1, 2, 2, 1, 0])
    readout = CrossFittedReadout(
        0.3 * rng.standard_normal((5, 10, 3)), rng.standard_normal((5, 3)), readout_folds(20), 1.0
    )
    rows = np.array([0, 1, 2, 8, 9, 14])  # six rows, five folds: two rows share fold 4
    w = balanced_weights(np.array([0, 1, 2, 2]), 3)

    def value(z):
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return readout_loss_and_logp_gradient(np.exp(lp), readout, y, w, loss, gamma, rows)

    _check_logp_gradient(value, logits, [(0, 0), (1, 4), (3, 9), (5, 2)])


def test_choose_readout_c_regularises_more_when_the_labels_are_noisier():
    """Cross-validated C: a clean rule keeps weak regularisation, labels that are mostly noise get strong."""
    rng = np.random.default_rng(1)
    clean_scores, clean_y = _ratio_task(rng, 300)
    noisy_scores, noisy_y = _ratio_task(rng, 300, noise=20.0)
    clean, noisy = choose_readout_C(clean_scores, clean_y, 2), choose_readout_C(noisy_scores, noisy_y, 2)
    assert clean in READOUT_C_GRID and noisy in READOUT_C_GRID
    assert noisy < clean
    assert LogisticReadout.fit(clean_scores, clean_y, 2, C="auto").C == clean


def test_cross_fitted_readout_refuses_a_class_that_one_fold_holds_alone():
    scores = np.random.default_rng(0).dirichlet(np.ones(4), size=20)
    y = np.zeros(20, dtype=np.int64)
    y[[2, 7]] = 1  # both in fold 2
    with pytest.raises(InvalidInputError, match=r"y has 2 sample\(s\) of class 1, all in fold 2"):
        CrossFittedReadout.fit(scores, y, 2)


def test_readout_reads_scores_a_top_k_answer_left_out_as_below_its_smallest():
    """A top-k row's zeros become half its smallest given score; a full row is read as log(max(s, floor))."""
    full = np.array([[0.5, 0.3, 0.15, 0.05, 1e-9]])
    top2 = np.array([[0.5, 0.3, 0.0, 0.0, 0.0]])
    nothing = np.zeros((1, 5))  # an answer with no concept above the API's threshold
    readout = LogisticReadout(np.eye(5), np.zeros(5))
    np.testing.assert_array_equal(readout.logits(full), np.log(np.maximum(full, LogisticReadout.FLOOR)))
    np.testing.assert_allclose(readout.logits(top2), np.log([[0.5, 0.3, 0.15, 0.15, 0.15]]))
    np.testing.assert_allclose(readout.logits(nothing), np.log(np.full((1, 5), LogisticReadout.FLOOR)))
    both = readout.logits(np.concatenate([full, top2]))  # each row read on its own
    np.testing.assert_allclose(both, np.concatenate([readout.logits(full), readout.logits(top2)]))
