"""Checkpoints: what they recognise (data shape, dtype, classes), and max_queries held across crashes."""

import numpy as np
import pytest

from _models import fresh_linear
from bar_sdk import BARClassifier, CheckpointError

X13 = np.random.default_rng(0).random((13, 8, 8)).astype(np.float32)
Y13 = np.arange(13) % 2


def bar(model, path, **kw):
    kw = {"max_queries": 400, "batch_size": 5, "random_state": 0, "checkpoint": str(path), **kw}
    return BARClassifier(model, **kw)


@pytest.mark.parametrize("program, other", [("full", (13, 4, 16)), ("pad", (13, 2, 32)), ("pad", (13, 64))])
def test_a_checkpoint_for_other_shaped_data_is_refused_naming_the_shapes(tmp_path, program, other):
    path = tmp_path / "run.bar"
    bar(fresh_linear(), path, program=program).fit(X13, Y13)
    model = fresh_linear()
    with pytest.raises(CheckpointError, match=r"X of shape \(13, 8, 8\), dtype float32 there, of shape "
                                              + r"\(" + ", ".join(map(str, other)) + r"\)"):
        bar(model, path, program=program).fit(X13.reshape(other), Y13)
    assert model.seen == 0


def test_a_checkpoint_for_other_dtype_or_classes_is_refused_naming_them(tmp_path):
    path = tmp_path / "run.bar"
    bar(fresh_linear(), path).fit(X13, Y13)
    model = fresh_linear()
    with pytest.raises(CheckpointError, match=r"dtype float32 there, of shape \(13, 8, 8\), dtype float64 here"):
        bar(model, path).fit(X13.astype(np.float64), Y13)
    with pytest.raises(CheckpointError, match=r"classes \['0', '1'\].* there, .*classes \['a', 'b'\]"):
        bar(model, path).fit(X13, np.array(["a", "b"])[Y13])   # the same codes 0/1, other labels
    assert model.seen == 0
    again = bar(model, path).fit(X13, Y13)                      # the same data still resumes, at no cost
    assert model.seen == 0 and again.queries_ > 0
