"""The one input-shape check and the one label rule of bar_sdk.contract, as the core and the adapters use them."""

import numpy as np
import pytest

from bar_sdk.adapters import CallableModel
from bar_sdk.contract import check_class_labels, check_input_shape, check_labels, check_model
from bar_sdk.errors import InvalidInputError, InvalidModelError


class Shaped:
    n_classes = 2

    def __init__(self, input_shape):
        self.input_shape = input_shape

    def predict_proba(self, x):  # pragma: no cover - never called
        raise AssertionError


@pytest.mark.parametrize("shape", [(3, 8, 8), [1, 4, 5], np.array([3, 2, 2]), (np.int64(1), 3, 3)])
def test_a_good_shape_is_the_same_for_a_model_and_an_adapter(shape):
    assert check_model(Shaped(shape))[1] == check_input_shape(shape) == tuple(int(s) for s in shape)
    assert CallableModel(lambda x: np.full((len(x), 2), 0.5), 2, shape).input_shape == tuple(int(s) for s in shape)


@pytest.mark.parametrize("shape", [(3.5, 8, 8), (2, 8, 8), (3, 0, 8), (3, 8), (True, 8, 8), None, "3,8,8"])
def test_a_bad_shape_is_refused_by_both_naming_it(shape):
    with pytest.raises(InvalidModelError, match=r"model\.input_shape=.*expected a tuple \(C, H, W\) of integers"):
        check_model(Shaped(shape))
    with pytest.raises(InvalidInputError, match=r"input_shape=.*expected a tuple \(C, H, W\) of integers"):
        CallableModel(lambda x: np.full((len(x), 2), 0.5), 2, shape)


def test_labels_whole_floats_and_columns_accepted_fractions_refused():
    y = np.array([0, 1, 2, 1])
    for given in (y, y.astype(np.float32), y[:, None], y.tolist()):
        np.testing.assert_array_equal(check_labels(given, 4)[0], y)
        np.testing.assert_array_equal(check_class_labels(given, 4, 5), y)
    for bad, match in (
        (y + 0.5, "non-integer"),
        (np.array([0, 1, np.nan, 1]), "non-integer"),
        (y.astype(str), "dtype"),
        (y[:3], "shape"),
    ):
        for check in (lambda v: check_labels(v, 4), lambda v: check_class_labels(v, 4, 5)):
            with pytest.raises(InvalidInputError, match=match):
                check(bad)
    with pytest.raises(InvalidInputError, match=r"labels in \[0, 2\]; expected 0..1"):
        check_class_labels(y, 4, 2)
    with pytest.raises(InvalidInputError, match="every label in 0..k-1"):
        check_labels(np.array([0, 2, 2, 0]), 4)
