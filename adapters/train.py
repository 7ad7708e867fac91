"""The one torch training routine, and the training capability ``bar_sdk.transfer`` asks of a torch model.

:func:`train_module` is the loop every torch training in the project runs
(``bar_sdk.adapters.nets.train_classifier``, the fine-tuning and from-scratch
baselines, distillation of a surrogate, the benchmarks' source model): Adam,
a shuffle per epoch drawn from a NumPy generator, a loss per mini-batch.

:class:`TorchTrainer` is what :meth:`TorchModel.transfer_trainer` returns:
NumPy in and out, so the core (``bar_sdk.transfer``) trains a torch model
without importing torch.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.nn import functional as F

from bar_sdk.errors import InvalidInputError

__all__ = ["train_module", "TorchTrainer", "FittedHead"]


def train_module(
    parameters: Iterable[torch.nn.Parameter],
    loss: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    device: Any = "cpu",
    seed: int | None = None,
    weight_decay: float = 0.0,
    one_cycle: bool = False,
) -> int:
    """Train with Adam for ``epochs`` passes over ``n`` samples; return the samples processed.

    Parameters
    ----------
    parameters : iterable of torch.nn.Parameter
        What Adam updates.
    loss : callable
        ``loss(idx)`` for a mini-batch of sample indices (a long tensor on
        ``device``) returns the scalar loss to back-propagate.
    n : int
        Samples in an epoch.
    epochs, batch_size, lr : int, int, float
        Already validated by the caller.
    rng : numpy.random.Generator
        Draws each epoch's shuffle (``rng.permutation(n)``), so the order is
        the caller's ``random_state``'s.
    device : str or torch.device, default "cpu"
    seed : int, optional
        Seeds torch's generator for the loop (dropout, ...) inside
        ``torch.random.fork_rng``, leaving the global generator as it was.
        None runs under the caller's torch random state.
    weight_decay : float, default 0.0
        Adam's weight decay.
    one_cycle : bool, default False
        A one-cycle learning-rate schedule peaking at ``lr`` (stepped every batch).

    The module's train/eval mode is the caller's to set.
    """
    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    schedule = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * -(-n // batch_size))
        if one_cycle
        else None
    )
    with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(n)).to(device)
            for start in range(0, n, batch_size):
                optimizer.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    loss(order[start : start + batch_size]).backward()
                optimizer.step()
                if schedule is not None:
                    schedule.step()
    return epochs * n


def last_linear(module: torch.nn.Module) -> torch.nn.Linear:
    """The last ``torch.nn.Linear`` of ``module`` (its head)."""
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise InvalidInputError(
            f"model.module={type(module).__name__} has no torch.nn.Linear layer; expected a classifier whose "
            "last linear layer is its head (its input is used as features)"
        )
    return linears[-1]


@dataclass
class FittedHead:
    """A trained copy of the network and the new head trained on its features (see :meth:`TorchTrainer.fit_head`)."""

    net: Any  # the TorchModel copy (its own head frozen, its features trained)
    head: torch.nn.Linear  # the new head: features -> the target task's classes
    n_images: int  # images processed while training

    def predict_proba(self, images: np.ndarray, batch: int) -> np.ndarray:
        """Class probabilities ``(n, k)``, float64."""
        feats = torch.from_numpy(self.net.transfer_trainer().features(images, batch))
        with torch.inference_mode():
            return torch.softmax(self.head(feats.to(self.head.weight.device)).double(), dim=1).cpu().numpy()


class TorchTrainer:
    """Training of a :class:`~bar_sdk.adapters.TorchModel` for ``bar_sdk.transfer``, NumPy in and out.

    The model given is never modified: every method that trains works on a
    deep copy. The network stays in eval mode throughout (as ``TorchModel``
    keeps it), so dropout is off and batch-norm statistics stay frozen.
    """

    def __init__(self, model: Any):
        last_linear(model.module)  # a network without a linear head is refused here, before any query
        self.model = model

    def _hooked(self, net: Any):
        """The last linear layer of ``net`` and a dict that receives its input on every forward pass."""
        head = last_linear(net.module)
        captured: dict[str, Any] = {}
        hook = head.register_forward_hook(lambda _m, inputs, _out: captured.__setitem__("f", inputs[0]))
        return head, captured, hook

    def features(self, images: np.ndarray, batch: int) -> np.ndarray:
        """The input of the network's last linear layer for every image, float32 ``(n, features)``."""
        head, captured, hook = self._hooked(self.model)
        device = head.weight.device
        parts = []
        try:
            with torch.inference_mode():
                for start in range(0, len(images), batch):
                    self.model.torch_log_proba(torch.from_numpy(images[start : start + batch]).to(device))
                    parts.append(captured["f"].reshape(len(images[start : start + batch]), -1).float().cpu().numpy())
        finally:
            hook.remove()
        return np.concatenate(parts)

    def fit_head(
        self,
        images: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        *,
        scratch: bool,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        class_weight: np.ndarray | None,
        rng: np.random.Generator,
    ) -> FittedHead:
        """A copy with a new head for ``n_classes``, every weight but the old head's trained on cross-entropy.

        ``scratch`` re-initialises the copy's weights first. ``class_weight``
        weighs the loss per class. ``rng`` seeds the new weights and shuffles.
        """
        net = copy.deepcopy(self.model)
        module = net.module
        old_head = last_linear(module)
        device = old_head.weight.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**62)))
            if scratch:
                for m in module.modules():
                    if callable(getattr(m, "reset_parameters", None)):
                        m.reset_parameters()
            head = torch.nn.Linear(old_head.in_features, n_classes).to(device)
        skip = {id(p) for p in old_head.parameters()}
        params = [p for p in module.parameters() if id(p) not in skip] + list(head.parameters())
        for p in old_head.parameters():
            p.requires_grad_(False)
        weight = None if class_weight is None else torch.tensor(class_weight, dtype=torch.float32, device=device)
        _, captured, hook = self._hooked(net)
        xt, yt = torch.from_numpy(images).to(device), torch.from_numpy(y).to(device)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            net.torch_log_proba(xt[idx])
            return F.cross_entropy(head(captured["f"]), yt[idx], weight=weight)

        try:
            n_images = train_module(
                params, loss, len(y), epochs=epochs, batch_size=batch_size, lr=learning_rate, rng=rng, device=device
            )
        finally:
            hook.remove()
        return FittedHead(net=net, head=head.eval(), n_images=n_images)

    def distil(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        held: np.ndarray,
        n_classes: int,
        *,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        rng: np.random.Generator,
    ) -> tuple[Any, dict[str, Any]]:
        """A copy trained to match ``targets`` (probabilities) on ``images[~held]``; its fidelity on the held-out rest.

        The copy's last linear layer is replaced by a new one when
        ``n_classes`` differs from the model's. Returns the copy and
        ``{"agreement", "agreement_before", "kl", "kl_before"}`` (None
        without held-out images): top-class agreement and mean
        ``KL(targets || copy)`` per image, after and before training.
        """
        student = copy.deepcopy(self.model)
        module = student.module
        device = last_linear(module).weight.device
        seed = int(rng.integers(2**62))
        x_held = torch.from_numpy(images[held]).to(device)
        p_held = torch.from_numpy(targets[held]).float().to(device)
        any_held = bool(held.any())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if student.n_classes != n_classes:
                head = last_linear(module)
                _replace(module, head, torch.nn.Linear(head.in_features, n_classes).to(device))
                student.n_classes = n_classes
            before, kl_before = _fidelity(student, x_held, p_held) if any_held else (None, None)
            x_train = torch.from_numpy(images[~held]).to(device)
            p_train = torch.from_numpy(targets[~held]).float().to(device)

            def loss(idx: torch.Tensor) -> torch.Tensor:
                return F.kl_div(student.torch_log_proba(x_train[idx]), p_train[idx], reduction="batchmean")

            # torch_log_proba keeps the module in eval mode: batch-norm statistics and dropout stay as the
            # surrogate had them, which suits a few thousand images
            train_module(
                module.parameters(),
                loss,
                len(x_train),
                epochs=epochs,
                batch_size=batch_size,
                lr=learning_rate,
                rng=rng,
                device=device,
            )
        agreement, kl = _fidelity(student, x_held, p_held) if any_held else (None, None)
        return student, {"agreement": agreement, "agreement_before": before, "kl": kl, "kl_before": kl_before}


def _fidelity(student: Any, x: torch.Tensor, p: torch.Tensor) -> tuple[float, float]:
    """Share of images whose top class is the black box's, and mean ``KL(black box || student)`` per image.

    One pass of the student over ``x``; the KL is the training loss's (``F.kl_div``, batch mean).
    """
    with torch.no_grad():
        log_q = student.torch_log_proba(x)
        agreement = (log_q.argmax(1) == p.argmax(1)).double().mean().item()
        kl = F.kl_div(log_q, p, reduction="batchmean").item()
    return float(agreement), float(kl)


def _replace(module: torch.nn.Module, old: torch.nn.Module, new: torch.nn.Module) -> None:
    """Swap the submodule ``old`` for ``new`` wherever it sits in ``module``."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)
                return
    raise InvalidInputError("could not replace the surrogate's last linear layer")  # pragma: no cover
