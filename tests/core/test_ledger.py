import numpy as np
import pytest

from bar_sdk import (
    InvalidInputError,
    InvalidModelError,
    MeteredModel,
    ModelOutputError,
    QueryBudgetExceeded,
    QueryLedger,
)
from bar_sdk.contract import check_images, check_labels


class Counting:
    n_classes = 3
    input_shape = (1, 4, 4)

    def __init__(self, out=None):
        self.seen = 0
        self.out = out

    def predict_proba(self, x):
        self.seen += len(x)
        if self.out is not None:
            return self.out(x)
        return np.full((len(x), 3), 1 / 3)


def test_ledger_counts_every_image_and_never_exceeds():
    m = Counting()
    metered = MeteredModel(m, QueryLedger(max_queries=25), batch_size=4)
    metered.predict_proba(np.zeros((10, 1, 4, 4)), purpose="mapping")
    metered.predict_proba(np.zeros((12, 1, 4, 4)), purpose="train")
    assert metered.ledger.queries == m.seen == 22
    assert metered.ledger.by_purpose == {"mapping": 10, "train": 12}
    with pytest.raises(QueryBudgetExceeded) as err:
        metered.predict_proba(np.zeros((4, 1, 4, 4)))
    assert m.seen == 22 + 0  # refused whole before leaving (the first chunk of 4 does not fit in 3)
    assert "max_queries=25" in str(err.value)
    metered.predict_proba(np.zeros((3, 1, 4, 4)))
    assert metered.ledger.queries == m.seen == 25


def test_split_request_that_does_not_fit_is_refused_before_its_first_part():
    m = Counting()
    metered = MeteredModel(m, QueryLedger(max_queries=5), batch_size=3)
    with pytest.raises(QueryBudgetExceeded, match="a batch of 6 refused"):
        metered.predict_proba(np.zeros((6, 1, 4, 4)))
    assert m.seen == metered.ledger.queries == metered.ledger.calls == 0


class OwnBudget(Counting):
    """A model with its own cap (like bar_sdk.adapters.RemoteModel): refuses a batch unsent when it would cross it."""

    def __init__(self, cap):
        super().__init__()
        self.cap = cap

    def predict_proba(self, x):
        if self.seen + len(x) > self.cap:
            raise QueryBudgetExceeded(len(x), self.seen, self.cap)
        return super().predict_proba(x)


def test_batch_refused_unsent_by_the_model_is_not_counted():
    m = OwnBudget(cap=7)
    metered = MeteredModel(m, QueryLedger(), batch_size=4)
    metered.predict_proba(np.zeros((4, 1, 4, 4)), purpose="mapping")
    with pytest.raises(QueryBudgetExceeded):
        metered.predict_proba(np.zeros((4, 1, 4, 4)), purpose="train")
    led = metered.ledger
    assert (led.queries, led.calls, led.failed, led.by_purpose) == (4, 1, 0, {"mapping": 4}) and m.seen == 4
    metered.predict_proba(np.zeros((3, 1, 4, 4)), purpose="train")
    assert led.queries == m.seen == 7 and led.by_purpose == {"mapping": 4, "train": 3}


def test_a_batch_that_raised_otherwise_stays_counted_as_failed():
    def broken(x):
        raise ConnectionError("lost after sending")

    metered = MeteredModel(Counting(broken))
    with pytest.raises(ConnectionError):
        metered.predict_proba(np.zeros((2, 1, 4, 4)))
    assert metered.ledger.queries == metered.ledger.failed == 2


@pytest.mark.parametrize(
    "out,match",
    [
        (lambda x: np.zeros((len(x), 2)), "shape"),
        (lambda x: np.full((len(x), 3), np.nan), "NaN"),
        (lambda x: -np.ones((len(x), 3)), "negative"),
    ],
)
def test_bad_model_outputs_are_named(out, match):
    metered = MeteredModel(Counting(out))
    with pytest.raises(ModelOutputError, match=match):
        metered.predict_proba(np.zeros((2, 1, 4, 4)))


def test_objects_without_the_contract_are_refused():
    with pytest.raises(InvalidModelError, match="predict_proba"):
        MeteredModel(object())


@pytest.mark.parametrize(
    "x,match",
    [
        (np.linspace(0, 1.5, 32).reshape(2, 4, 4), r"values in \[0, 1.5\]"),
        (np.full((2, 4, 4), np.nan), "NaN"),
        (np.zeros((2, 4, 4), dtype=np.int64), "dtype int64"),
        (np.zeros((2, 4)), "shape"),
        (np.zeros((0, 4, 4)), "empty"),
    ],
)
def test_bad_images_are_refused_not_clipped(x, match):
    with pytest.raises(InvalidInputError, match=match):
        check_images(x)


def test_image_layouts():
    assert check_images(np.zeros((2, 5, 6), np.uint8)).shape == (2, 1, 5, 6)
    assert check_images(np.zeros((2, 5, 6, 3), np.uint8)).shape == (2, 3, 5, 6)
    x = check_images(np.full((1, 3, 2, 2), 255, np.uint8))
    assert x.dtype == np.float32 and x.max() == 1.0


@pytest.mark.parametrize(
    "y,match",
    [
        ([0, 0, 0], "single class"),
        ([0, 2, 2], "0..k-1"),
        ([0.5, 1, 0], "non-integer"),
        ([0, 1], r"expected \(3,\)"),
    ],
)
def test_bad_labels(y, match):
    with pytest.raises(InvalidInputError, match=match):
        check_labels(np.asarray(y), 3)


# --------------------------------------------------------------------------- one scan per batch on the hot path
def _counting_scans(monkeypatch):
    """Count the adapters' whole-batch scans (``check_images`` as ``check_batch`` calls it)."""
    from bar_sdk.adapters import _checks

    calls = []

    def counted(x, *a, **kw):
        calls.append(np.shape(x))
        return check_images(x, *a, **kw)

    monkeypatch.setattr(_checks, "check_images", counted)
    return calls


def test_an_adapter_does_not_rescan_the_batch_a_metered_model_just_scanned(monkeypatch):
    from bar_sdk.adapters import CallableModel

    scans = _counting_scans(monkeypatch)
    model = CallableModel(lambda x: np.full((len(x), 3), 1 / 3), 3, (1, 4, 4))
    x = np.random.default_rng(0).random((5, 1, 4, 4)).astype(np.float32)
    metered = MeteredModel(model, QueryLedger(100), batch_size=2)
    assert metered.predict_proba(x).shape == (5, 3) and scans == []  # three parts, none scanned again
    model.predict_proba(x)  # a direct call is checked in full
    assert scans == [(5, 1, 4, 4)]
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="1 NaN or infinite values"):
        model.predict_proba(bad)
    with pytest.raises(InvalidInputError, match="1 NaN or infinite values"):
        metered.predict_proba(bad)
    assert metered.ledger.queries == 5


def test_a_batch_outside_zero_one_still_meets_the_adapters_range_check(monkeypatch):
    from bar_sdk.adapters import CallableModel

    scans = _counting_scans(monkeypatch)
    model = CallableModel(lambda x: np.full((len(x), 3), 1 / 3), 3, (1, 4, 4))
    metered = MeteredModel(model, QueryLedger(100))
    with pytest.raises(InvalidInputError, match=r"values in \[0, 1.5\]; expected floats in \[0, 1\]"):
        metered.predict_proba(
            np.full((2, 1, 4, 4), 1.5, np.float32) * np.array([0, 1], np.float32)[:, None, None, None]
        )
    assert len(scans) == 1


def test_a_bar_fit_scans_each_batch_once_and_its_data_once(monkeypatch):
    from _models import fresh_linear

    from bar_sdk import BARClassifier, layout, ledger
    from bar_sdk.adapters import CallableModel

    adapter_scans = _counting_scans(monkeypatch)
    ledger_scans, data_checks = [], []
    real_refuse, real_images = ledger.refuse_non_finite, layout.check_images
    monkeypatch.setattr(ledger, "refuse_non_finite", lambda x, *a: ledger_scans.append(len(x)) or real_refuse(x, *a))
    monkeypatch.setattr(layout, "check_images", lambda x, *a, **kw: data_checks.append(1) or real_images(x, *a, **kw))
    inner = fresh_linear()
    model = CallableModel(inner.predict_proba, 10, (1, 16, 16))
    X = np.random.default_rng(1).random((30, 8, 8)).astype(np.float32)
    clf = BARClassifier(model, max_queries=600, batch_size=10, n_directions=2, random_state=0).fit(X, np.arange(30) % 2)
    assert data_checks == [1]  # X checked once in fit (TargetLayout not again)
    assert adapter_scans == []  # the adapter trusts the batch the ledger scanned
    assert sum(ledger_scans) == clf.queries_ == inner.seen and len(ledger_scans) == inner.calls
    clf.predict(X[:4])
    assert data_checks == [1, 1]  # a public call checks its input


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 37, -1])
def test_check_images_refuses_one_non_finite_value_anywhere(dtype, bad, where):
    # The check reads min and max only; NaN must propagate through both, an infinity show in one.
    x = np.full((3, 1, 5, 5), 0.5, dtype=dtype)
    x.reshape(-1)[where] = bad
    with pytest.raises(InvalidInputError, match="X has 1 NaN or infinite values"):
        check_images(x)
    x.reshape(-1)[1] = np.nan
    with pytest.raises(InvalidInputError, match="X has 2 NaN or infinite values"):
        check_images(x)
