"""scikit-learn's own estimator checks, and the labels every scikit-learn classifier accepts."""

import warnings

import numpy as np
import pytest
from _models import fresh_linear, trained_linear
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.estimator_checks import check_estimator

from bar_sdk import BARClassifier, InvalidInputError


class FrozenLinear:
    """The shared digits classifier without call counters: querying it changes nothing in it."""

    n_classes = 10
    input_shape = (1, 16, 16)

    def __init__(self):
        self.w, self.b = trained_linear().w, trained_linear().b

    def predict_proba(self, x):
        z = np.asarray(x, np.float64).reshape(len(x), -1) @ self.w.T + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def test_check_estimator_passes_every_check_that_runs():
    # 1,000 queries fit every check's data (at most 300 rows: a mapping pass, a step of 60, the readout pass)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(BARClassifier(FrozenLinear(), max_queries=1000, random_state=0), on_fail=None)
    status = {}
    for r in results:
        status.setdefault(r["status"], []).append(r["check_name"])
    failed = [(r["check_name"], repr(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert not failed
    ran = len(results) - len(status.get("skipped", []))
    assert len(status["passed"]) >= 0.9 * len(results) and len(status["passed"]) == ran
    # skipped only where this environment lacks what the check needs (array API, pandas)
    assert set(status.get("skipped", [])) <= {"check_array_api_input", "check_classifier_data_not_an_array"}


def test_a_model_that_counts_its_calls_fails_only_the_declared_check():
    from sklearn.utils.estimator_checks import check_estimators_overwrite_params

    from bar_sdk.reprogram import SKLEARN_EXPECTED_FAILED_CHECKS

    clf = BARClassifier(fresh_linear(), max_queries=600, random_state=0)
    with pytest.raises(AssertionError, match="should not change or mutate"):  # its counters moved, not BAR
        check_estimators_overwrite_params("BARClassifier", clf)
    assert set(SKLEARN_EXPECTED_FAILED_CHECKS) == {"check_estimators_overwrite_params"}
    check_estimators_overwrite_params("BARClassifier", BARClassifier(FrozenLinear(), max_queries=600, random_state=0))


@pytest.fixture(scope="module")
def cancer60():
    d = load_breast_cancer()
    return d.data[:120], d.target[:120]


def fit(X, y, model=None, **kw):
    kw = {"max_queries": 900, "random_state": 0, **kw}
    return BARClassifier(model or fresh_linear(), **kw).fit(X, y)


@pytest.mark.parametrize(
    "names",
    [
        np.array(["benign", "malignant"]),
        np.array(["benign", "malignant"], object),
        np.array([3, 7]),
        np.array([-1.0, 2.0]),
        np.array([False, True]),
    ],
)
def test_any_labels_train_exactly_as_their_positions_and_come_back_as_given(cancer60, names, tmp_path):
    X, y = cancer60
    coded = fit(X, y)
    named = fit(X, names[y])
    np.testing.assert_array_equal(named.theta_, coded.theta_)  # encoding changes nothing in training
    np.testing.assert_array_equal(named.classes_, names)
    assert named.classes_.dtype == np.unique(names[y]).dtype
    pred = named.predict(X)
    np.testing.assert_array_equal(pred, names[coded.predict(X)])
    assert named.score(X, names[y]) == coded.score(X, y)
    named.save(tmp_path / "p.bar")
    loaded = BARClassifier.load(tmp_path / "p.bar", fresh_linear())
    np.testing.assert_array_equal(loaded.predict(X[:20]), pred[:20])
    assert loaded.classes_.dtype == named.classes_.dtype


def test_three_non_contiguous_classes():
    X, y = load_breast_cancer(return_X_y=True)
    y3 = np.where(X[:, 0] > 15, 40, np.where(y == 1, 10, 20))[:150]
    clf = fit(X[:150], y3, max_queries=1500)
    assert list(clf.classes_) == [10, 20, 40]
    assert set(np.unique(clf.predict(X[:150]))) <= {10, 20, 40}
    assert clf.predict_proba(X[:5]).shape == (5, 3)


def test_a_column_vector_y_is_warned_about_and_raveled(cancer60):
    X, y = cancer60
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        col = fit(X, y[:, None])
    np.testing.assert_array_equal(col.theta_, fit(X, y).theta_)


@pytest.mark.parametrize(
    "X_kind, y_kind, match",
    [
        ("dense", "continuous", "continuous"),
        ("dense", "none", "requires y to be passed"),
        ("dense", "one", "one class"),
        ("dense", "multi", r"expected \(120,\)"),
        ("sparse", "ok", "sparse input is not supported"),
        ("object_dict", "ok", "not a number"),
        ("flat", "ok", "Reshape your data"),
        ("no_features", "ok", r"0 feature\(s\)"),
    ],
)
def test_what_scikit_learn_refuses_is_refused_before_any_query(cancer60, X_kind, y_kind, match):
    from scipy import sparse

    X, y = cancer60
    X = {
        "dense": X,
        "sparse": sparse.csr_matrix(X),
        "flat": X[:, 0],
        "no_features": X[:, :0],
        "object_dict": np.array([[{"a": 1}] * 3] * 120, dtype=object),
    }[X_kind]
    y = {"ok": y, "continuous": y + 0.5, "none": None, "one": np.zeros(120, int), "multi": np.stack([y, y], 1)}[y_kind]
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match=match) as err:
        fit(X, y, model)
    assert model.seen == 0
    if X_kind == "object_dict":
        assert isinstance(err.value, TypeError)  # as NumPy's own conversion error, which scikit-learn expects


def test_predict_names_the_feature_count_it_expects(cancer60):
    X, y = cancer60
    clf = fit(X, y)
    seen = clf.model.seen
    with pytest.raises(InvalidInputError, match="X has 4 features, but BARClassifier is expecting 30 features"):
        clf.predict(X[:, :4])
    with pytest.raises(InvalidInputError, match="Reshape your data"):
        clf.predict_proba(X[0])
    assert clf.model.seen == seen
