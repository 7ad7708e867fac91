"""Tolerances for float32 results computed along different paths, derived from float32 arithmetic.

A float32 model's answer for an image is not a function of the image alone. BLAS picks its kernel
(summation order, blocking, FMA or not) by batch size, alignment and CPU; NumPy's and torch's
vectorised exp and tanh differ from their scalar loops by an ulp or two. So the same image scored
in a batch of 1 and in a batch of 24, or on an Intel and an AMD machine, may differ in the last
bits, and a test comparing them must allow what float32 arithmetic allows, no more.

What does not depend on the machine is the bound (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., section 3.1): each IEEE float32 operation returns the exact result times
(1 + d) with |d| <= u = 2**-24 (half of float32's eps), and n of them in a chain stay within a
factor 1 +- gamma(n), gamma(n) = n u / (1 - n u), of the exact value. An inner product of length
n, summed in any order, has ``|fl(x . w) - x . w| <= gamma(n) * sum |x_i w_i|``. The helpers below
propagate that through dense layers and a softmax, so a tolerance is a bound on one evaluation's
error, computed from the depth of the computation (the length of each sum) and the sizes of the
weights, and two evaluations of the same answer differ by at most twice it.

Each bound is a worst case, far above what a run shows (rounding errors mostly cancel), and still
small next to a wrong answer: for the demo model of the remote tests, one gray level on one pixel
moves a probability by many times the bound (tests/promises/test_float32_tolerances.py checks that, that
the bound holds against exact arithmetic, and that a wrong answer fails).
"""

from __future__ import annotations

import numpy as np

U = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32, 2**-24
U64 = float(np.finfo(np.float64).eps) / 2
ULPS = 4  # vectorised exp / tanh are within 4 ulp (NumPy documents < 2.6 ulp for its SIMD exp); 1 ulp <= 2u


def gamma(n: int, u: float = U) -> float:
    """Higham's gamma_n: the relative error bound of a chain of ``n`` rounded operations."""
    assert n * u < 1
    return n * u / (1 - n * u)


def dense_logits_error(layers, x_abs, input_error: float = 0.0) -> tuple[float, float]:
    """``(error, size)``: bounds on ``|fl(z) - z|`` and on ``|z|`` for the logits of one float32 evaluation.

    ``layers`` is a list of ``(W, b)``, ``W`` shaped (inputs, outputs), computed as ``h @ W + b`` in
    float32, with a 1-Lipschitz activation bounded by 1 (tanh) between consecutive layers. ``x_abs``
    bounds the inputs' sizes: a number, or the array ``|x|`` itself, shaped (n, inputs); each input
    carries ``input_error``. Per layer, with ``n`` inputs, for each output ``j``:
    ``err_j <= sum_i |W_ij| err_in + gamma(n + 1) * (sum_i |W_ij| |h_i| + |b_j|)``; the activation
    adds its own ``ULPS`` ulps and keeps ``|h| <= 1``. Returns the largest over outputs (and rows).
    """
    err = float(input_error)
    size = np.asarray(x_abs, np.float64)
    for depth, (w, b) in enumerate(layers):
        w, b = np.abs(np.asarray(w, np.float64)), np.abs(np.asarray(b, np.float64))
        terms = size @ w + b if size.ndim else size * w.sum(axis=0) + b  # sum_i |W_ij| |h_i| + |b_j|
        err = float(w.sum(axis=0).max()) * err + gamma(w.shape[0] + 1) * float(terms.max())
        size = np.float64(terms.max())
        if depth < len(layers) - 1:  # the activation
            err, size = err + ULPS * 2 * U, np.float64(1.0)
    return err, float(size)


def softmax_rtol(logit_error: float, logit_size: float, n_classes: int, dtype=np.float32) -> float:
    """Relative error bound of softmax probabilities, one evaluation, given logit error bounds.

    ``d log p_j = e_j - sum_i p_i e_i`` has size at most ``2 max|e|``: a logit error of ``e``
    moves each probability by at most ``2e`` relatively, however small the probability. A float32
    softmax adds its own: the shift by the largest logit (``u * 2 * logit_size``), ``exp``
    (``ULPS`` ulps each), the sum of ``n_classes`` positive terms and the division. A float64 softmax
    of float32 logits adds only float64 roundings.
    """
    if dtype == np.float64:
        return 2 * logit_error + gamma(2 * ULPS + n_classes + 2, U64)
    return 2 * (logit_error + U * 2 * logit_size) + 2 * ULPS * 2 * U + gamma(n_classes - 1) + U


def assert_close_f32(actual, desired, rtol: float, *, evaluations: int = 2, err_msg: str = "") -> None:
    """``actual`` and ``desired`` are the same answer evaluated along different float32 paths.

    ``rtol`` bounds one evaluation's relative error (from :func:`softmax_rtol`); ``evaluations=2``
    when both sides are float32 evaluations, ``1`` when ``desired`` is exact.
    """
    np.testing.assert_allclose(
        actual,
        desired,
        rtol=evaluations * rtol,
        atol=0,
        err_msg=err_msg or f"beyond float32's bound ({evaluations} x {rtol:.3g} relative)",
    )


def demo_model_rtol(model, images_uint8) -> float:
    """One evaluation's bound for :class:`bar_sdk.adapters.server.DemoModel` on these 8-bit images.

    DemoModel computes ``softmax((x - 0.5) @ W + b)`` in float32 with ``x = image / 255``; the
    subtraction rounds once (``u / 2``).
    """
    x = np.asarray(images_uint8).reshape(len(images_uint8), -1) / 255.0
    err, size = dense_logits_error([(model._w, model._b)], np.abs(x - 0.5), input_error=U / 2)
    return softmax_rtol(err, size, model.n_classes)
