"""adapters/train.py: the one torch training routine, and the trainer bar_sdk.transfer uses."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bar_sdk.adapters import TorchModel  # noqa: E402
from bar_sdk.adapters.nets import MLPNet  # noqa: E402
from bar_sdk.adapters.train import train_module  # noqa: E402
from bar_sdk.errors import InvalidInputError  # noqa: E402


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(64, 4)).astype(np.float32))
    y = torch.from_numpy((x[:, 0] > 0).numpy().astype(np.int64))
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 2))
    return net, x, y


def _train(net, x, y, **kw):
    loss = lambda idx: torch.nn.functional.cross_entropy(net(x[idx]), y[idx])  # noqa: E731
    return train_module(
        net.parameters(), loss, len(x), epochs=5, batch_size=16, lr=0.05, rng=np.random.default_rng(1), **kw
    )


def test_same_seed_same_weights_and_torch_global_generator_untouched():
    a, x, y = _problem()
    b, _, _ = _problem()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    assert _train(a.train(), x, y, seed=7) == 5 * 64  # samples processed
    assert torch.equal(torch.get_rng_state(), before)
    _train(b.train(), x, y, seed=7)
    for p, q in zip(a.parameters(), b.parameters(), strict=False):
        assert torch.equal(p, q)


def test_training_lowers_the_loss_with_and_without_a_one_cycle_schedule():
    for kw in ({}, {"one_cycle": True, "weight_decay": 1e-4}):
        net, x, y = _problem()
        net.eval()
        start = torch.nn.functional.cross_entropy(net(x), y).item()
        _train(net, x, y, seed=0, **kw)
        assert torch.nn.functional.cross_entropy(net(x), y).item() < 0.5 * start


def test_the_trainer_never_modifies_the_model_it_was_given():
    model = TorchModel(MLPNet((1, 4, 4), 3, hidden=8, random_state=0), (1, 4, 4))
    weights = [p.detach().clone() for p in model.module.parameters()]
    rng = np.random.default_rng(0)
    images = rng.random((20, 1, 4, 4)).astype(np.float32)
    fitted = model.transfer_trainer().fit_head(
        images,
        rng.integers(0, 2, 20),
        2,
        scratch=False,
        epochs=2,
        batch_size=8,
        learning_rate=1e-2,
        class_weight=None,
        rng=rng,
    )
    assert fitted.predict_proba(images, 8).shape == (20, 2)
    assert all(torch.equal(p, w) for p, w in zip(model.module.parameters(), weights, strict=False))
    student, fidelity = model.transfer_trainer().distil(
        images, np.full((20, 5), 0.2), np.arange(20) >= 16, 5, epochs=1, batch_size=8, learning_rate=1e-2, rng=rng
    )
    assert (
        student.n_classes == 5
        and model.n_classes == 3
        and set(fidelity) == {"agreement", "agreement_before", "kl", "kl_before"}
    )
    assert all(torch.equal(p, w) for p, w in zip(model.module.parameters(), weights, strict=False))


def test_a_network_without_a_linear_head_is_refused_by_name():
    conv = TorchModel(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 4), torch.nn.Flatten()), (1, 4, 4))
    with pytest.raises(InvalidInputError, match="no torch.nn.Linear"):
        conv.transfer_trainer().features(np.zeros((2, 1, 4, 4), np.float32), 2)
