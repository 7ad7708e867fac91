"""OnnxModel: an ONNX graph behind the black-box contract, checked against NumPy on tiny graphs."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package builds the test graphs")
pytest.importorskip("onnxruntime", reason="OnnxModel needs the onnx extra")
from _blocked import run_without  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bar_sdk.adapters import OnnxModel  # noqa: E402
from bar_sdk.contract import check_model  # noqa: E402
from bar_sdk.errors import InvalidInputError, MissingDependencyError, ModelOutputError  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.normal(size=(48, 5)).astype(np.float32)  # (3*4*4) -> 5 classes
B = RNG.normal(size=5).astype(np.float32)


def _graph(batch="n", layout="NCHW", softmax=False, log=False, conv_head=False):
    """Flatten -> Gemm (-> Softmax): logits = flat(x) @ W + B, as bytes."""
    shape = [batch, 3, 4, 4] if layout == "NCHW" else [batch, 4, 4, 3]
    nodes = []
    src = "x"
    if layout == "NHWC":  # back to NCHW inside the graph so W applies to the same pixels
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]))
        src = "xt"
    if log:  # log of the input: -inf on a zero image
        nodes.append(helper.make_node("Log", [src], ["xl"]))
        src = "xl"
    nodes += [helper.make_node("Flatten", [src], ["f"], axis=1), helper.make_node("Gemm", ["f", "W", "B"], ["z"])]
    out, out_shape = "z", [batch, 5]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["p"], axis=1))
        out = "p"
    if conv_head:  # (n, 5, 1, 1), as a network ending in a 1x1 convolution answers
        nodes.append(helper.make_node("Unsqueeze", ["z", "axes"], ["z4"]))
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
        out, out_shape = "z4", [batch, 5, 1, 1]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _reference(x, mean=0.0, std=1.0):
    z = ((x - mean) / std).reshape(len(x), -1).astype(np.float64) @ W.astype(np.float64) + B
    z -= z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def _images(n):
    return RNG.random((n, 3, 4, 4), dtype=np.float32)


def test_scores_match_numpy_with_normalisation_and_batching(tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(_graph())
    x = _images(11)
    mean, std = (0.2, 0.5, 0.4), (0.3, 0.25, 0.5)
    model = OnnxModel(path, mean=mean, std=std, batch_size=4, threads=1, labels=list("abcde"))
    assert check_model(model) == (5, (3, 4, 4))
    assert model.labels == tuple("abcde")
    p = model.predict_proba(x)
    ref = _reference(x, np.reshape(mean, (1, 3, 1, 1)), np.reshape(std, (1, 3, 1, 1)))
    assert p.dtype == np.float64 and p.shape == (11, 5)
    # float32 graph arithmetic on 48-term sums: errors of order 1e-6 in the logits
    np.testing.assert_allclose(p, ref, atol=1e-5)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    whole = OnnxModel(path.read_bytes(), mean=mean, std=std, batch_size=64, threads=1).predict_proba(x)
    np.testing.assert_allclose(p, whole, atol=1e-6)


def test_fixed_batch_graph_gets_padded_batches():
    x = _images(10)  # 10 = 4 + 4 + 2: the last chunk is padded to 4 and the padding dropped
    model = OnnxModel(_graph(batch=4), threads=1)
    np.testing.assert_allclose(model.predict_proba(x), _reference(x), atol=1e-5)


def test_probabilities_graph_passes_through_and_nhwc_layout():
    x = _images(6)
    probs = OnnxModel(_graph(softmax=True), outputs="probabilities", threads=1)
    np.testing.assert_allclose(probs.predict_proba(x), _reference(x), atol=1e-5)
    nhwc = OnnxModel(_graph(layout="NHWC"), layout="NHWC", threads=1)
    assert nhwc.input_shape == (3, 4, 4)
    np.testing.assert_allclose(nhwc.predict_proba(x), _reference(x), atol=1e-5)


def test_a_convolutional_head_and_a_pickled_copy_answer_the_same(tmp_path):
    import pickle

    x = _images(4)
    head = OnnxModel(_graph(conv_head=True), threads=1)
    assert head.n_classes == 5
    np.testing.assert_allclose(head.predict_proba(x), _reference(x), atol=1e-5)
    path = tmp_path / "tiny.onnx"
    path.write_bytes(_graph())
    for model in (OnnxModel(path, mean=0.5, threads=1), OnnxModel(_graph(), mean=0.5, threads=1)):
        copy = pickle.loads(pickle.dumps(model))  # a worker process gets its own session
        assert copy._session is not model._session
        np.testing.assert_array_equal(copy.predict_proba(x), model.predict_proba(x))


def test_preprocess_callable_replaces_mean_std():
    x = _images(5)
    model = OnnxModel(_graph(), preprocess=lambda b: b * 2.0 - 1.0, threads=1)
    np.testing.assert_allclose(model.predict_proba(x), _reference(x, 0.5, 0.5), atol=1e-5)
    with pytest.raises(InvalidInputError, match="preprocess"):
        OnnxModel(_graph(), preprocess=lambda b: b, mean=0.5)
    with pytest.raises(InvalidInputError, match="preprocess returned shape"):
        OnnxModel(_graph(), preprocess=lambda b: b[:, :1])


def test_thread_count_reaches_the_session():
    model = OnnxModel(_graph(), threads=2)
    options = model._session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert "threads=2" in repr(model)


def test_shapes_and_bad_arguments_are_refused_by_name(tmp_path):
    free = _graph()
    with pytest.raises(InvalidInputError, match="input_shape"):
        OnnxModel(free, input_shape=(3, 5, 4))
    with pytest.raises(InvalidInputError, match="n_classes=7"):
        OnnxModel(free, n_classes=7)
    with pytest.raises(InvalidInputError, match="labels has 2 names"):
        OnnxModel(free, labels=["a", "b"])
    with pytest.raises(InvalidInputError, match="threads=0"):
        OnnxModel(free, threads=0)
    with pytest.raises(InvalidInputError, match="outputs='scores'"):
        OnnxModel(free, outputs="scores")
    with pytest.raises(InvalidInputError, match="is not a file"):
        OnnxModel(tmp_path / "missing.onnx")
    with pytest.raises(InvalidInputError, match="could not load"):
        OnnxModel(b"not an onnx graph")
    with pytest.raises(InvalidInputError, match="input_name='y'"):
        OnnxModel(free, input_name="y")
    model = OnnxModel(free, threads=1)
    with pytest.raises(InvalidInputError, match=r"expected \(n, 3, 4, 4\)"):
        model.predict_proba(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(InvalidInputError, match="expected floats in"):
        model.predict_proba(np.full((1, 3, 4, 4), 2.0, np.float32))


def test_non_finite_graph_output_is_an_error():
    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        OnnxModel(_graph(log=True), threads=1)  # the zero probe image: log(0) = -inf


def test_missing_onnxruntime_names_the_extra():
    out = run_without(
        ["onnxruntime"],
        """
from bar_sdk.adapters import OnnxModel
from bar_sdk.errors import MissingDependencyError
try:
    OnnxModel(b'')
except MissingDependencyError as exc:
    print(exc)
""",
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'bar-sdk[onnx]'" in out.stdout
    assert issubclass(MissingDependencyError, ImportError)
