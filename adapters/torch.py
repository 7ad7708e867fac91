"""Serve a PyTorch classifier as a black box (and, optionally, a white box).

torch is imported here and nowhere in ``bar_sdk``: ``import adapters`` works
without torch, and :class:`TorchModel` is loaded on first use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from bar_sdk.adapters._checks import (
    check_batch,
    check_input_shape,
    check_label_names,
    check_per_channel,
    check_probed_classes,
)
from bar_sdk.contract import check_choice, check_int
from bar_sdk.errors import InvalidInputError, ModelOutputError

if TYPE_CHECKING:
    from bar_sdk.adapters.train import TorchTrainer

__all__ = ["TorchModel"]

logger = logging.getLogger(__name__)

# Floor for probabilities before taking their log when the module returns
# probabilities: keeps log(0) finite without moving any score that matters.
_PROB_FLOOR = 1e-12


class TorchModel:
    """A ``torch.nn.Module`` classifier behind the black-box contract.

    The module is moved to ``device`` and put in eval mode (dropout off,
    batch-norm statistics frozen); both are done in place on the module you
    pass. Every call runs under ``torch.inference_mode`` in batches of
    ``batch_size``.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a float tensor ``(n, C, H, W)`` to ``(n, n_classes)`` logits
        (or probabilities, see ``outputs``).
    input_shape : tuple of int
        ``(C, H, W)`` the module expects, C in (1, 3).
    n_classes : int, optional
        Number of outputs; inferred from one forward pass on zeros when
        omitted. When given it is checked against that pass.
    device : str or torch.device, default "cpu"
        Where the module runs. Never guessed from the module's parameters.
    batch_size : int, default 256
        Largest batch sent through the module at once.
    mean, std : float or sequence of float, optional
        Per-channel normalisation applied inside the adapter:
        ``(x - mean) / std`` on inputs in [0, 1]. A scalar applies to every
        channel. ``std`` values must be > 0.
    outputs : {"logits", "probabilities"}, default "logits"
        What the module returns. Logits go through a softmax; probabilities
        are passed through as they are.
    labels : sequence of str, optional
        Class names, one per output.

    Attributes
    ----------
    n_classes : int
    input_shape : tuple of int
    labels : tuple of str or None

    Examples
    --------
    >>> import torch, numpy as np
    >>> from bar_sdk.adapters import TorchModel
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> model = TorchModel(net, (1, 4, 4))
    >>> model.predict_proba(np.zeros((2, 1, 4, 4), np.float32)).shape
    (2, 3)
    """

    def __init__(
        self,
        module: Any,
        input_shape: Any,
        *,
        n_classes: int | None = None,
        device: Any = "cpu",
        batch_size: int = 256,
        mean: Any = None,
        std: Any = None,
        outputs: str = "logits",
        labels: Any = None,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise InvalidInputError(f"module={type(module).__name__}; expected a torch.nn.Module")
        self.input_shape = check_input_shape(input_shape)
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.outputs = check_choice(outputs, "outputs", ("logits", "probabilities"))
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise InvalidInputError(f"device={device!r}; expected a torch device such as 'cpu' or 'cuda:0'") from None
        channels = self.input_shape[0]
        self.mean = check_per_channel(mean, "mean", channels, 0.0, positive=False)
        self.std = check_per_channel(std, "std", channels, 1.0, positive=True)
        if self.device.type == "meta":  # moving the module there would drop the caller's weights
            raise InvalidInputError(
                f"device={device!r} holds no data; expected a device that computes, such as 'cpu' or 'cuda:0'"
            )
        try:  # the constants first: an unusable device fails here, before the caller's module is moved
            self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
            self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
            self.module = module.to(self.device).eval()
        except (RuntimeError, AssertionError) as exc:  # e.g. "Torch not compiled with CUDA enabled"
            raise InvalidInputError(
                f"device={device!r} is not usable here ({exc}); expected an available device"
            ) from None

        # One forward pass on zeros: infers n_classes and catches a wrong input_shape now, not mid-run.
        try:
            with torch.inference_mode():
                probe = self._forward(torch.zeros((1, *self.input_shape), device=self.device))
        except RuntimeError as exc:
            raise InvalidInputError(
                f"input_shape={self.input_shape}: the module failed on a zero batch (1, "
                f"{', '.join(map(str, self.input_shape))}) ({exc}); expected the shape the module accepts"
            ) from None
        if probe.ndim != 2 or probe.shape[1] < 2:
            raise InvalidInputError(
                f"module returns shape {tuple(probe.shape)} for one image; expected (1, n_classes) with n_classes >= 2"
            )
        self.n_classes = check_probed_classes(n_classes, int(probe.shape[1]), "module")
        self.labels = check_label_names(labels, self.n_classes)

    # -- black box -------------------------------------------------------------------------

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for ``x``.

        Parameters
        ----------
        x : ndarray, shape (n, C, H, W)
            float32 in [0, 1] (or uint8).

        Returns
        -------
        ndarray of float64, shape (n, n_classes)
        """
        x = check_batch(x, self.input_shape)
        self.module.eval()
        parts = []
        with torch.inference_mode():
            for start in range(0, len(x), self.batch_size):
                chunk = torch.from_numpy(x[start : start + self.batch_size]).to(self.device)
                out = self._forward(chunk).double()
                if self.outputs == "logits":
                    out = torch.softmax(out, dim=1)
                parts.append(out.cpu().numpy())
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    # -- optional training capability (see bar_sdk.transfer: fine-tuning, distillation) ----

    def transfer_trainer(self) -> "TorchTrainer":
        """The NumPy-facing trainer ``bar_sdk.transfer`` uses to fine-tune or distil copies of this model."""
        from bar_sdk.adapters.train import TorchTrainer

        return TorchTrainer(self)

    # -- optional white-box capability (see bar_sdk.contract.GradientModel) ----------------

    def torch_log_proba(self, x: "torch.Tensor") -> "torch.Tensor":
        """Differentiable log-probabilities for a tensor batch (optional fast path).

        For white-box attacks that want to stay in torch (e.g. Carlini-Wagner):
        no NumPy round trip, no batching, no input checks, and gradients flow
        back to ``x``. Queries made this way are *not* counted by a ledger;
        the portable route is :meth:`log_proba_gradient`.

        Parameters
        ----------
        x : torch.Tensor, shape (n, C, H, W)
            Values in [0, 1], on ``self.device``.

        Returns
        -------
        torch.Tensor, shape (n, n_classes)
        """
        self.module.eval()
        out = self._forward(x)
        if self.outputs == "logits":
            return torch.log_softmax(out, dim=1)
        return torch.log(out.clamp_min(_PROB_FLOOR))

    def log_proba_gradient(
        self, x: np.ndarray, loss_fn: Callable[[np.ndarray], tuple[float, np.ndarray]]
    ) -> tuple[float, np.ndarray]:
        """Exact gradient of ``loss_fn(log_proba(x))`` with respect to ``x``.

        Parameters
        ----------
        x : ndarray, shape (n, C, H, W)
            float32 in [0, 1].
        loss_fn : callable
            Gets the log-probabilities ``(n, n_classes)`` as float64 NumPy and
            returns ``(loss, dloss_dlogp)`` with ``dloss_dlogp`` shaped
            ``(n, n_classes)``.

        Returns
        -------
        loss : float
        dloss_dx : ndarray of float32, shaped like ``x``
        """
        x = check_batch(x, self.input_shape)
        n = len(x)
        one_pass = n <= self.batch_size
        if one_pass:
            xt = torch.from_numpy(x).to(self.device).requires_grad_(True)
            with torch.enable_grad():
                logp = self.torch_log_proba(xt)
            logp_np = logp.detach().double().cpu().numpy()
        else:
            # Forward everything first (loss_fn may couple images, e.g. a mean), then
            # backpropagate chunk by chunk so memory stays bounded by batch_size.
            with torch.inference_mode():
                logp_np = np.concatenate(
                    [
                        self.torch_log_proba(torch.from_numpy(x[s : s + self.batch_size]).to(self.device))
                        .double()
                        .cpu()
                        .numpy()
                        for s in range(0, n, self.batch_size)
                    ]
                )
        loss, grad_logp = loss_fn(logp_np)
        grad_logp = np.asarray(grad_logp, dtype=np.float64)
        if grad_logp.shape != logp_np.shape or not np.all(np.isfinite(grad_logp)):
            raise ModelOutputError(
                f"loss_fn returned a gradient of shape {grad_logp.shape} (or non-finite values); "
                f"expected finite values shaped {logp_np.shape}"
            )
        if one_pass:
            weights = torch.from_numpy(grad_logp).to(device=self.device, dtype=logp.dtype)
            (grad_x,) = torch.autograd.grad(logp, xt, grad_outputs=weights)
            return float(loss), grad_x.cpu().numpy().astype(np.float32, copy=False)
        grads = []
        for s in range(0, n, self.batch_size):
            xt = torch.from_numpy(x[s : s + self.batch_size]).to(self.device).requires_grad_(True)
            with torch.enable_grad():
                logp = self.torch_log_proba(xt)
            weights = torch.from_numpy(grad_logp[s : s + self.batch_size]).to(device=self.device, dtype=logp.dtype)
            (grad_x,) = torch.autograd.grad(logp, xt, grad_outputs=weights)
            grads.append(grad_x.cpu().numpy())
        return float(loss), np.concatenate(grads).astype(np.float32, copy=False)

    # -- internals ---------------------------------------------------------------------------

    def _forward(self, x: "torch.Tensor") -> "torch.Tensor":
        out: torch.Tensor = self.module((x - self._mean) / self._std)
        return out

    def __repr__(self) -> str:
        return (
            f"TorchModel({type(self.module).__name__}, input_shape={self.input_shape}, "
            f"n_classes={self.n_classes}, device='{self.device}', outputs='{self.outputs}')"
        )
