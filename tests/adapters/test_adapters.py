"""Behaviour of the model adapters and the output-restriction wrappers."""

import copy
import subprocess
import sys

import numpy as np
import pytest
from _extras import reason
from _float32 import assert_close_f32, dense_logits_error, softmax_rtol

from bar_sdk.adapters import CallableModel, LabelOnly, Rounded, SklearnModel, TopK
from bar_sdk.contract import check_model, has_gradients
from bar_sdk.errors import InvalidInputError, InvalidModelError, ModelOutputError
from bar_sdk.ledger import MeteredModel

torch = pytest.importorskip("torch", reason=reason("torch"))
from bar_sdk.adapters import TorchModel  # noqa: E402
from bar_sdk.adapters.nets import MLPNet, SmallCNN, digits_images, train_classifier  # noqa: E402

SHAPE = (1, 6, 6)


def tiny_net(k=4, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 8), torch.nn.Tanh(), torch.nn.Linear(8, k))


def images(n, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def softmax_scores(x):
    z = np.stack([x.mean((1, 2, 3)) * s for s in (1.0, 3.0, -2.0, 0.5, 5.0)], 1)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def digits():
    X, y = digits_images(size=16)
    order = np.random.default_rng(0).permutation(len(X))
    return X[order[:1200]], y[order[:1200]], X[order[1200:]], y[order[1200:]]


# --- every adapter satisfies the contract -----------------------------------------------------


def _sklearn_model():
    from sklearn.linear_model import LogisticRegression

    X = images(60)
    y = np.arange(60) % 3
    return SklearnModel(LogisticRegression(max_iter=200).fit(X.reshape(60, -1), y), SHAPE)


ADAPTERS = {
    "torch": lambda: TorchModel(tiny_net(), SHAPE),
    "callable": lambda: CallableModel(softmax_scores, 5, SHAPE),
    "sklearn": _sklearn_model,
    "topk": lambda: TopK(TorchModel(tiny_net(), SHAPE), 2),
    "rounded": lambda: Rounded(CallableModel(softmax_scores, 5, SHAPE)),
    "label_only": lambda: LabelOnly(CallableModel(softmax_scores, 5, SHAPE)),
}


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapter_satisfies_contract_and_meters(name):
    model = ADAPTERS[name]()
    n_classes, shape = check_model(model)
    assert shape == SHAPE
    metered = MeteredModel(model, batch_size=3)
    scores = metered.predict_proba(images(7))
    assert scores.shape == (7, n_classes) and scores.dtype == np.float64
    assert metered.ledger.queries == 7


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapter_refuses_bad_batches(name):
    model = ADAPTERS[name]()
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        model.predict_proba(images(2) * 2)
    with pytest.raises(InvalidInputError, match="shape"):
        model.predict_proba(images(2, shape=(1, 5, 5)))


# --- TorchModel -------------------------------------------------------------------------------


def test_torch_softmax_matches_module_and_rows_sum_to_one():
    net = tiny_net()
    model = TorchModel(net, SHAPE)
    x = images(5)
    p = model.predict_proba(x)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x)).double(), 1).numpy()
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    assert model.n_classes == 4


def test_torch_probabilities_pass_through():
    net = torch.nn.Sequential(tiny_net(), torch.nn.Softmax(dim=1))
    model = TorchModel(net, SHAPE, outputs="probabilities")
    x = images(4)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-6)
    # Applying a second softmax would flatten the scores towards uniform.
    double = TorchModel(net, SHAPE).predict_proba(x)
    assert np.ptp(double, axis=1).max() < np.ptp(expected, axis=1).max()


def test_torch_normalisation_is_applied_per_channel():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    model = TorchModel(net, (3, 4, 4), mean=mean, std=std)
    x = images(3, shape=(3, 4, 4))
    xn = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(xn)).double(), 1).numpy()
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-5)
    plain = TorchModel(net, (3, 4, 4)).predict_proba(x)
    assert not np.allclose(plain, expected)


def tiny_net_rtol(net, x):
    """float32's bound on one evaluation of ``tiny_net``'s probabilities for ``x`` (see tests/helpers/_float32.py).

    Its two Linear layers and tanh run in float32; TorchModel takes the softmax in float64.
    """
    layers = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in net if isinstance(m, torch.nn.Linear)]
    err, size = dense_logits_error(layers, np.abs(x.reshape(len(x), -1)))
    return softmax_rtol(err, size, layers[-1][1].size, dtype=np.float64)


def test_torch_batching_matches_one_batch():
    # Batches of 5 and of 23 take different float32 kernels: equal up to float32's bound, not bit for bit.
    x = images(23)
    net = tiny_net()
    one = TorchModel(net, SHAPE, batch_size=64).predict_proba(x)
    many = TorchModel(net, SHAPE, batch_size=5).predict_proba(x)
    rtol = tiny_net_rtol(net, x)
    assert_close_f32(many, one, rtol)
    with torch.no_grad():  # and each within one bound of exact arithmetic
        exact = torch.softmax(copy.deepcopy(net).double()(torch.from_numpy(x).double()), 1).numpy()
    for p in (one, many):
        assert_close_f32(p, exact, rtol, evaluations=1)
    for i in range(len(x)):  # a chunk answering for another image fails
        with pytest.raises(AssertionError):
            assert_close_f32(many[i : i + 1], np.roll(one, 1, axis=0)[i : i + 1], rtol)


def test_torch_eval_mode_turns_dropout_off():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(36, 3)).train()
    model = TorchModel(net, SHAPE)
    x = images(6)
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(x))
    net.train()  # a caller flipping the mode back does not leak into predictions
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(x))


def test_torch_infers_and_checks_n_classes():
    assert TorchModel(tiny_net(k=7), SHAPE).n_classes == 7
    with pytest.raises(InvalidInputError, match="n_classes=5"):
        TorchModel(tiny_net(k=7), SHAPE, n_classes=5)


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"input_shape": (2, 6, 6)}, "input_shape"),
        ({"input_shape": (1, 5, 5)}, "input_shape"),
        ({"batch_size": 0}, "batch_size"),
        ({"outputs": "scores"}, "outputs"),
        ({"device": "nonsense"}, "device"),
        ({"mean": (0.1, 0.2)}, "mean"),
        ({"std": 0.0}, "std"),
        ({"std": "big"}, "std"),
        ({"labels": ["a", "b"]}, "labels"),
    ],
)
def test_torch_bad_arguments_name_the_parameter(kwargs, param):
    args = {"input_shape": SHAPE, **kwargs}
    with pytest.raises(InvalidInputError, match=param):
        TorchModel(tiny_net(), args.pop("input_shape"), **args)


@pytest.mark.parametrize("device", ["meta", "cuda:0"])
def test_torch_unusable_device_is_refused_and_the_module_left_where_it_was(device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    net = tiny_net()
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(InvalidInputError, match="device="):
        TorchModel(net, SHAPE, device=device)
    for p, q in zip(net.parameters(), before, strict=True):
        assert p.device.type == "cpu" and torch.equal(p, q)


def test_torch_refuses_a_non_module():
    with pytest.raises(InvalidInputError, match="module"):
        TorchModel(lambda x: x, SHAPE)


def _finite_difference(model, x, loss_fn, eps=1e-3):
    grad = np.zeros(x.size)
    flat = x.reshape(-1).astype(np.float64)
    for i in range(x.size):
        hi, lo = flat.copy(), flat.copy()
        hi[i] += eps
        lo[i] -= eps
        f_hi = loss_fn(np.log(model.predict_proba(hi.reshape(x.shape).astype(np.float32))))[0]
        f_lo = loss_fn(np.log(model.predict_proba(lo.reshape(x.shape).astype(np.float32))))[0]
        grad[i] = (f_hi - f_lo) / (2 * eps)
    return grad.reshape(x.shape)


@pytest.mark.parametrize("batch_size", [16, 1])
def test_log_proba_gradient_matches_finite_differences(batch_size):
    net = tiny_net()
    model = TorchModel(net, SHAPE, batch_size=batch_size)
    assert has_gradients(model)
    x = np.clip(images(2), 0.05, 0.95)
    target = np.array([1, 3])

    def loss_fn(logp):  # mean cross-entropy towards target: couples the batch through the mean
        n = len(logp)
        g = np.zeros_like(logp)
        g[np.arange(n), target] = -1.0 / n
        return float(-logp[np.arange(n), target].mean()), g

    loss, grad = model.log_proba_gradient(x, loss_fn)
    assert grad.shape == x.shape
    assert loss == pytest.approx(loss_fn(np.log(model.predict_proba(x)))[0], rel=1e-5)
    fd = _finite_difference(model, x, loss_fn)
    cos = np.dot(grad.ravel(), fd.ravel()) / (np.linalg.norm(grad) * np.linalg.norm(fd))
    assert cos > 0.999
    np.testing.assert_allclose(grad, fd, atol=2e-3 * np.abs(fd).max())


def test_log_proba_gradient_leaves_parameter_grads_alone_and_checks_loss_fn():
    net = tiny_net()
    model = TorchModel(net, SHAPE)
    model.log_proba_gradient(images(2), lambda lp: (0.0, np.ones_like(lp)))
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ModelOutputError, match="loss_fn"):
        model.log_proba_gradient(images(2), lambda lp: (0.0, np.ones(3)))


def test_torch_log_proba_is_differentiable_and_consistent():
    model = TorchModel(tiny_net(), SHAPE)
    x = images(3)
    xt = torch.from_numpy(x).requires_grad_(True)
    logp = model.torch_log_proba(xt)
    logp[:, 0].sum().backward()
    assert xt.grad is not None and xt.grad.abs().sum() > 0
    np.testing.assert_allclose(np.exp(logp.detach().double().numpy()), model.predict_proba(x), rtol=1e-5)


# --- CallableModel and SklearnModel -----------------------------------------------------------


def test_callable_model_checks_its_outputs_and_arguments():
    x = images(3)
    np.testing.assert_allclose(CallableModel(softmax_scores, 5, SHAPE).predict_proba(x), softmax_scores(x))
    with pytest.raises(ModelOutputError, match="shape"):
        CallableModel(softmax_scores, 4, SHAPE).predict_proba(x)
    with pytest.raises(ModelOutputError, match="negative"):
        CallableModel(lambda z: -softmax_scores(z), 5, SHAPE).predict_proba(x)
    with pytest.raises(InvalidInputError, match="fn"):
        CallableModel("not callable", 5, SHAPE)
    with pytest.raises(InvalidInputError, match="n_classes"):
        CallableModel(softmax_scores, 1, SHAPE)
    with pytest.raises(InvalidInputError, match="input_shape"):
        CallableModel(softmax_scores, 5, (6, 6))


def test_sklearn_model_on_digits_logistic_regression():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    clf = LogisticRegression(max_iter=300).fit(X[:1200], y[:1200])
    model = SklearnModel(clf, (1, 8, 8))
    assert model.n_classes == 10 and model.labels == tuple(str(d) for d in range(10))
    p = model.predict_proba(X[1200:].reshape(-1, 1, 8, 8))
    np.testing.assert_allclose(p, clf.predict_proba(X[1200:]))
    assert (p.argmax(1) == y[1200:]).mean() > 0.9


def test_sklearn_model_refuses_unusable_estimators():
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    X, y = images(30).reshape(30, -1), np.arange(30) % 2
    with pytest.raises(InvalidInputError, match="not fitted"):
        SklearnModel(LogisticRegression(), SHAPE)
    with pytest.raises(InvalidInputError, match="predict_proba"):
        SklearnModel(LinearSVC().fit(X, y), SHAPE)
    with pytest.raises(InvalidInputError, match="n_features_in_=36"):
        SklearnModel(LogisticRegression().fit(X, y), (1, 5, 5))


# --- restriction wrappers ---------------------------------------------------------------------


def test_topk_keeps_exactly_the_k_largest():
    base = CallableModel(softmax_scores, 5, SHAPE, labels=list("abcde"))
    x = images(8)
    full = base.predict_proba(x)
    for k in (1, 2, 4):
        top = TopK(base, k).predict_proba(x)
        assert np.all((top > 0).sum(1) == k)
        kept = top > 0
        np.testing.assert_array_equal(top[kept], full[kept])
        assert np.all(full[kept].reshape(8, k).min(1) >= np.where(kept, -np.inf, full).max(1))
    wrapped = TopK(base, 2)
    assert wrapped.labels == tuple("abcde") and wrapped.n_classes == 5 and wrapped.input_shape == SHAPE
    assert not has_gradients(TopK(TorchModel(tiny_net(), SHAPE), 2))


@pytest.mark.parametrize("k", [0, 6, 2.5])
def test_topk_refuses_bad_k(k):
    with pytest.raises(InvalidInputError, match="k="):
        TopK(CallableModel(softmax_scores, 5, SHAPE), k)


def test_rounded_rounds_to_decimals():
    base = CallableModel(softmax_scores, 5, SHAPE)
    x = images(6)
    out = Rounded(base, decimals=1).predict_proba(x)
    np.testing.assert_allclose(out * 10, np.round(out * 10), atol=1e-9)
    assert np.abs(out - base.predict_proba(x)).max() <= 0.05 + 1e-12
    with pytest.raises(InvalidInputError, match="decimals"):
        Rounded(base, decimals=-1)


def test_label_only_is_one_hot_argmax_and_flagged():
    base = CallableModel(softmax_scores, 5, SHAPE)
    x = images(6)
    out = LabelOnly(base).predict_proba(x)
    np.testing.assert_array_equal(out.sum(1), 1.0)
    np.testing.assert_array_equal(out.argmax(1), base.predict_proba(x).argmax(1))
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert LabelOnly(base).label_only is True
    assert Rounded(LabelOnly(base)).label_only is True
    assert getattr(base, "label_only", False) is False


def test_wrappers_refuse_non_models():
    with pytest.raises(InvalidModelError):
        TopK(object(), 1)


# --- nets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,channels", [(16, 1), (28, 1), (32, 3)])
def test_small_cnn_shapes(size, channels):
    net = SmallCNN(channels, 7, size, width=4, random_state=0)
    assert TorchModel(net, (channels, size, size)).n_classes == 7
    assert TorchModel(MLPNet((channels, size, size), 3, hidden=8), (channels, size, size)).n_classes == 3


def test_small_cnn_seeded_init_is_reproducible_and_private():
    state = torch.random.get_rng_state()
    a, b = SmallCNN(1, 10, 16, random_state=3), SmallCNN(1, 10, 16, random_state=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_digits_images_in_unit_range():
    X, y = digits_images(size=20)
    assert X.shape == (1797, 1, 20, 20) and X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() <= 1.0 and X.max() > 0.9
    assert set(np.unique(y)) == set(range(10))
    with pytest.raises(InvalidInputError, match="size"):
        digits_images(size=4)


def test_train_classifier_learns_digits_deterministically(digits):
    Xtr, ytr, Xte, yte = digits

    def fit():
        net = SmallCNN(1, 10, 16, random_state=0)
        return train_classifier(net, Xtr, ytr, epochs=6, batch_size=64, lr=3e-3, random_state=0)

    net = fit()
    assert not net.training
    acc = (TorchModel(net, (1, 16, 16)).predict_proba(Xte).argmax(1) == yte).mean()
    assert acc > 0.9
    again = fit()
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), again.parameters(), strict=True))


def test_train_classifier_refuses_bad_input(digits):
    Xtr, ytr, _, _ = digits
    net = SmallCNN(1, 10, 16)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        train_classifier(net, Xtr * 255, ytr, epochs=1)
    with pytest.raises(InvalidInputError, match="epochs"):
        train_classifier(net, Xtr, ytr, epochs=0)


def test_adapters_import_without_torch():
    # A finder that refuses torch, as if it were not installed (sys.modules['torch'] = None
    # would confuse scipy's own torch detection).
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is not installed')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import bar_sdk.adapters\n"
        "from bar_sdk.adapters import CallableModel, SklearnModel, TopK, Rounded, LabelOnly\n"
        "assert 'TorchModel' in bar_sdk.adapters.__all__ and 'torch' not in sys.modules\n"
        "try:\n    bar_sdk.adapters.TorchModel\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('TorchModel loaded without torch')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
