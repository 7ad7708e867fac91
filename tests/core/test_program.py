"""Programs: shapes, ranges, the untouched target, and exact adjoints."""

import numpy as np
import pytest

from bar_sdk import InvalidInputError
from bar_sdk.program import (
    FullFrameProgram,
    FullResolution,
    GridParameterization,
    LowRankParameterization,
    PadProgram,
    interpolation_matrix,
    resize_images,
)

SHAPE = (3, 12, 12)


def programs():
    return [
        PadProgram(SHAPE, (6, 6), FullResolution()),
        PadProgram(SHAPE, (6, 6), GridParameterization(4)),
        PadProgram(SHAPE, (6, 6), LowRankParameterization(2)),
        FullFrameProgram(SHAPE, GridParameterization(3), strength=0.3),
    ]


@pytest.mark.parametrize("prog", programs(), ids=lambda p: f"{type(p).__name__}-{type(p.param).__name__}")
def test_images_in_range_and_shaped(prog):
    rng = np.random.default_rng(0)
    x = rng.random((4, 3) + prog.target_hw).astype(np.float32)
    theta = 3 * rng.standard_normal((2, prog.n_params))
    out = prog.apply(theta, prog.embed(x))
    assert out.shape == (8,) + SHAPE
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_pad_program_leaves_target_untouched_and_zero_is_grey():
    prog = PadProgram(SHAPE, (6, 6), FullResolution())
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 6, 6)).astype(np.float32)
    out = prog.apply(rng.standard_normal((1, prog.n_params)), prog.embed(x))
    np.testing.assert_allclose(out[:, :, 3:9, 3:9], x, atol=1e-6)
    grey = prog.apply(np.zeros((1, prog.n_params)), prog.embed(x))
    frame = grey * prog.mask
    assert np.allclose(frame[prog.mask.astype(bool)[None].repeat(2, 0)], 0.5)
    assert prog.n_params == 3 * (144 - 36)


def test_grid_drops_cells_hidden_under_the_target():
    prog = PadProgram((3, 32, 32), (20, 20), GridParameterization(8))
    assert prog.n_params < 3 * 64
    assert prog.n_params >= 3 * (64 - 16)


@pytest.mark.parametrize("prog", programs(), ids=lambda p: f"{type(p).__name__}-{type(p.param).__name__}")
def test_gradient_matches_finite_differences(prog):
    rng = np.random.default_rng(2)
    x = rng.random((3, 3) + prog.target_hw).astype(np.float32) * 0.5 + 0.25
    emb = prog.embed(x)
    theta = 0.3 * rng.standard_normal(prog.n_params)
    g_img = rng.standard_normal((3,) + SHAPE)

    def f(t):
        return float((prog.apply(t[None], emb).astype(np.float64) * g_img).sum())

    analytic = prog.gradient(theta, emb, g_img)
    for i in rng.choice(prog.n_params, size=8, replace=False):
        e = np.zeros_like(theta)
        e[i] = 1e-3
        numeric = (f(theta + e) - f(theta - e)) / 2e-3
        assert analytic[i] == pytest.approx(numeric, rel=2e-2, abs=2e-3)


def test_target_larger_than_input_is_refused():
    with pytest.raises(InvalidInputError, match="target_size"):
        PadProgram(SHAPE, (13, 6), FullResolution())


def test_interpolation_rows_sum_to_one_and_resize_keeps_range():
    for mode in ("nearest", "bilinear", "area"):
        mat = interpolation_matrix(7, 3 if mode == "area" else 11, mode)
        np.testing.assert_allclose(mat.sum(1), 1.0, rtol=1e-6)
    x = np.random.default_rng(3).random((2, 1, 28, 28)).astype(np.float32)
    small = resize_images(x, (20, 20))
    assert small.shape == (2, 1, 20, 20) and 0 <= small.min() and small.max() <= 1
    assert abs(small.mean() - x.mean()) < 0.01  # area resampling keeps the mean


def test_a_grid_finer_than_bilinear_upsampling_can_use_is_refused_naming_grid_size():
    mask = np.ones((1, 16, 16), dtype=np.float32)
    assert GridParameterization(32).bind((1, 16, 16), mask).n_params == 32 * 32  # every cell reaches a pixel
    with pytest.raises(InvalidInputError, match=r"grid_size=33 for a 16x16 frame; expected an integer in \[1, 32\]"):
        GridParameterization(33).bind((1, 16, 16), mask)


def test_bar_refuses_a_huge_grid_before_any_query_instead_of_a_memory_error():
    from _models import digits16, fresh_linear

    from bar_sdk import BARClassifier

    model = fresh_linear()
    x, y = digits16()
    with pytest.raises(InvalidInputError, match="grid_size=1000000"):
        BARClassifier(model, max_queries=500, grid_size=10**6, random_state=0).fit(x[:20, :, 4:12, 4:12], y[:20] % 2)
    assert model.seen == 0


def test_a_rank_above_what_the_frame_can_hold_is_refused_naming_rank():
    mask = np.ones((1, 16, 12), dtype=np.float32)
    assert LowRankParameterization(12).bind((1, 16, 12), mask).n_params == 12 * (16 + 12)
    with pytest.raises(InvalidInputError, match=r"rank=13 for a 16x12 frame; expected an integer in \[1, 12\]"):
        LowRankParameterization(13).bind((1, 16, 12), mask)
    with pytest.raises(InvalidInputError, match=r"rank=1000000000"):
        LowRankParameterization(10**9).bind((1, 16, 12), mask)  # was a MemoryError


@pytest.mark.parametrize("m", [1, 5, 17])
def test_grid_decode_and_the_upsampler_give_einsums_own_numbers_with_the_cached_order(m):
    """The contraction order is searched once per shape; the products, and so the numbers, are einsum's own."""
    from bar_sdk.attacks.resize import Upsampler

    grid = GridParameterization(6).bind((3, 32, 32), np.zeros((3, 32, 32), np.float32) + 1)
    theta = np.random.default_rng(m).standard_normal((m, grid.n_params))
    full = np.zeros((m, 3 * 36), np.float32)
    full[:, grid._keep] = theta
    want = np.einsum("Hi,mcij,Wj->mcHW", grid._rows, full.reshape(m, 3, 6, 6), grid._cols, optimize=True)
    np.testing.assert_array_equal(grid.decode(theta), want * grid.mask)
    up = Upsampler((3, 8, 8), (3, 32, 32))
    flat = np.random.default_rng(m + 1).standard_normal((m, 3 * 64))
    grids = flat.reshape(m, 3, 8, 8)
    np.testing.assert_array_equal(up(flat), np.einsum("hi,...cij,wj->...chw", up.rows, grids, up.cols, optimize=True))
