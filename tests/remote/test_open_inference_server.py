"""Our server in the Open Inference Protocol, checked by a client we did not write (tritonclient)
and by our own preset: metadata, health, infer (JSON and binary), top-k, errors, limits, faults, billing."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from bar_sdk import InvalidInputError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize
from bar_sdk.adapters.server import DemoModel, Faults, create_app, serve

SHAPE = (3, 4, 5)
MODEL = DemoModel(SHAPE, n_classes=6, random_state=3)
LABELS = list(MODEL.labels)


def auth():
    """Fresh headers per call: tritonclient writes Inference-Header-Content-Length into the dict it is given."""
    return {"Authorization": "Bearer test-key"}


FAST = RetryPolicy(initial=0.01, jitter=0.01, maximum=0.2, max_attempts=12, random_state=0)


def images(n, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE)).astype(np.float32)


def triton(server):
    http = pytest.importorskip(
        "tritonclient.http", reason="tritonclient is a test dependency: pip install -e '.[test]'"
    )
    return http, http.InferenceServerClient(server.base_url.removeprefix("http://"))


def infer_input(http, x, binary, name="input", datatype="FP32"):
    tensor = http.InferInput(name, list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_reads_health_metadata_and_scores(binary):
    x = images(5)
    with serve(MODEL, preset="open_inference", model_name="demo") as server:
        http, client = triton(server)
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("demo")
        assert not client.is_model_ready("other")
        meta = client.get_model_metadata("demo")
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 4, 5]}]
        assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 6]}]
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        result = client.infer(
            "demo",
            [infer_input(http, x, binary)],
            headers=auth(),
            request_id="r-1",
            outputs=[http.InferRequestedOutput("probabilities", binary_data=binary)],
        )
        np.testing.assert_allclose(result.as_numpy("probabilities"), MODEL.predict_proba(x), rtol=1e-6, atol=1e-7)
        assert result.get_response()["id"] == "r-1"
        assert server.billed == 5 and server.stats().requests == 1


def test_tritonclient_classification_extension_is_the_models_top_k():
    x = images(4, seed=1)
    with serve(MODEL, preset="open_inference", model_name="demo") as server:
        http, client = triton(server)
        result = client.infer(
            "demo",
            [infer_input(http, x, True)],
            headers=auth(),
            model_version="1",
            outputs=[http.InferRequestedOutput("probabilities", binary_data=True, class_count=3)],
        )
        top = result.as_numpy("probabilities")
    p = MODEL.predict_proba(x)
    assert top.shape == (4, 3)
    for row, strings in zip(p, top, strict=False):
        parsed = [s.decode().split(":") for s in strings]
        assert [int(i) for _, i, _ in parsed] == list(np.argsort(-row, kind="stable")[:3])
        assert [name for _, _, name in parsed] == [LABELS[int(i)] for _, i, _ in parsed]
        np.testing.assert_allclose([float(v) for v, _, _ in parsed], np.sort(row)[::-1][:3], rtol=1e-6)


def test_tritonclient_sees_the_protocols_errors_and_nothing_is_billed():
    x = images(2)
    with serve(MODEL, preset="open_inference", model_name="demo") as server:
        http, client = triton(server)
        from tritonclient.utils import InferenceServerException

        cases = [
            ("demo", [infer_input(http, images(1)[:, :, :3], True)], auth(), "400", "unexpected shape"),
            (
                "demo",
                [infer_input(http, (x * 255).astype(np.uint8), False, datatype="UINT8")],
                auth(),
                "400",
                "expects 'FP32'",
            ),
            ("demo", [infer_input(http, x, False, name="pixels")], auth(), "400", "named 'input'"),
            ("demo", [infer_input(http, x * 2, False)], auth(), "400", "outside [0, 1]"),
            ("nosuch", [infer_input(http, x, False)], auth(), "404", "unknown model"),
            ("demo", [infer_input(http, x, False)], {"Authorization": "Bearer wrong"}, "401", "credentials"),
        ]
        for name, inputs, headers, status, text in cases:
            with pytest.raises(InferenceServerException) as info:
                client.infer(name, inputs, headers=dict(headers))
            assert info.value.status() == status and text in info.value.message(), (status, text)
        with pytest.raises(InferenceServerException, match="unexpected inference output"):
            client.infer(
                "demo", [infer_input(http, x, False)], headers=auth(), outputs=[http.InferRequestedOutput("logits")]
            )
        assert server.billed == 0


def test_our_preset_against_our_server_uses_binary_and_bills_what_the_server_counts():
    x = images(40, seed=2)
    with serve(MODEL, preset="open_inference", model_name="demo") as server:
        with RemoteModel.from_preset(
            "open_inference",
            base_url=server.base_url,
            api_key=server.api_key,
            model_name="demo",
            labels=LABELS,
            input_shape=SHAPE,
            max_batch=8,
            max_concurrency=3,
            retry=FAST,
        ) as model:
            p = model.predict_proba(x)
            assert model.preset._binary is True and model.preset.layout == "NCHW"  # from GET /v2, metadata
            np.testing.assert_allclose(p, MODEL.predict_proba(quantize(x).astype(np.float32) / 255), rtol=1e-6)
            top = RemoteModel.from_preset(
                "open_inference",
                base_url=server.base_url,
                api_key=server.api_key,
                model_name="demo",
                labels=LABELS,
                input_shape=SHAPE,
                classification=2,
                retry=FAST,
            )
            q = top.predict_proba(x[:3])
            assert (np.count_nonzero(q, axis=1) == 2).all()
            np.testing.assert_allclose(q.max(axis=1), p[:3].max(axis=1), rtol=1e-6)
            top.close()
            assert model.ledger.billed + top.ledger.billed == server.billed == 43


def test_rate_limit_and_faults_through_the_protocol_lose_nothing():
    faults = Faults(rate_429=0.15, rate_500=0.1, rate_malformed=0.1, retry_after=0, random_state=4)
    x = images(48, seed=5)
    with serve(MODEL, preset="open_inference", model_name="demo", rate_limit=100, burst=4, faults=faults) as server:
        with RemoteModel.from_preset(
            "open_inference",
            base_url=server.base_url,
            api_key=server.api_key,
            model_name="demo",
            labels=LABELS,
            input_shape=SHAPE,
            max_batch=4,
            max_concurrency=4,
            retry=FAST,
        ) as model:
            p = model.predict_proba(x)
            stats = server.stats()
    np.testing.assert_allclose(p, MODEL.predict_proba(quantize(x).astype(np.float32) / 255), rtol=1e-6)
    assert model.ledger.billed == stats.billed == 48
    assert model.ledger.requests == stats.requests
    assert stats.injected["429"] + stats.injected["500"] + stats.injected["malformed"] > 0


def test_server_top_k_cap_and_label_only():
    x = images(3, seed=6)
    with serve(MODEL, preset="open_inference", model_name="demo", top_k=2) as server:
        model = RemoteModel.from_preset(
            "open_inference",
            base_url=server.base_url,
            api_key=server.api_key,
            model_name="demo",
            labels=LABELS,
            input_shape=SHAPE,
            retry=FAST,
        )
        assert (np.count_nonzero(model.predict_proba(x), axis=1) == 2).all()
        model.close()
    with serve(MODEL, preset="open_inference", model_name="demo", label_only=True) as server:
        model = RemoteModel.from_preset(
            "open_inference",
            base_url=server.base_url,
            api_key=server.api_key,
            model_name="demo",
            labels=LABELS,
            input_shape=SHAPE,
            retry=FAST,
        )
        p = model.predict_proba(x)
        model.close()
    np.testing.assert_array_equal(p.argmax(axis=1), MODEL.predict_proba(quantize(x) / 255.0).argmax(axis=1))
    assert set(np.unique(p)) == {0.0, 1.0}


def test_create_app_checks_the_model_name():
    with pytest.raises(InvalidInputError, match="model_name"):
        create_app(MODEL, preset="open_inference", model_name="a/b")


def test_bar_serve_preset_open_inference_from_the_command_line():
    http = pytest.importorskip("tritonclient.http")
    from _mlserver import free_ports

    (port,) = free_ports(1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bar_sdk.cli",
            "serve",
            "--preset",
            "open_inference",
            "--model-name",
            "digits",
            "--input-shape",
            "1,8,8",
            "--classes",
            "4",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        client = http.InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.is_model_ready("digits"):
                    break
            except Exception:  # not listening yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        proc.stderr.read().decode() if proc.poll() is not None else "no start"
                    ) from None
                time.sleep(0.2)
        x = images(2)[:, :1, :4, :4].repeat(2, axis=2).repeat(2, axis=3)
        result = client.infer("digits", [infer_input(http, x, True)], headers=auth())
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), DemoModel((1, 8, 8), 4).predict_proba(x), rtol=1e-6, atol=1e-7
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_async_path_speaks_the_protocol_too():
    import asyncio

    x = images(12, seed=7)
    with serve(MODEL, preset="open_inference", model_name="demo") as server:
        model = RemoteModel.from_preset(
            "open_inference",
            base_url=server.base_url,
            api_key=server.api_key,
            model_name="demo",
            labels=LABELS,
            input_shape=SHAPE,
            max_batch=5,
            max_concurrency=3,
            retry=FAST,
        )
        p = asyncio.run(model.apredict_proba(x))
        model.close()
        assert model.ledger.billed == server.billed == 12 and server.stats().requests == 3
    np.testing.assert_allclose(p, MODEL.predict_proba(quantize(x).astype(np.float32) / 255), rtol=1e-6)


def test_a_server_declaring_uint8_is_sent_uint8_levels():
    x = images(6, seed=8)
    with serve(MODEL, preset="open_inference", model_name="demo", input_datatype="UINT8") as server:
        model = RemoteModel.from_preset(
            "open_inference",
            base_url=server.base_url,
            api_key=server.api_key,
            model_name="demo",
            labels=LABELS,
            input_shape=SHAPE,
            retry=FAST,
        )
        p = model.predict_proba(x)
        model.close()
        assert model.preset.datatype == "UINT8" and server.billed == 6  # read from the metadata
        http, client = triton(server)
        from tritonclient.utils import InferenceServerException

        with pytest.raises(InferenceServerException, match="expects 'UINT8'"):
            client.infer("demo", [infer_input(http, x, True)], headers=auth())
    np.testing.assert_allclose(p, MODEL.predict_proba(quantize(x).astype(np.float32) / 255), rtol=1e-6)
    with pytest.raises(InvalidInputError, match="input_datatype"):
        create_app(MODEL, preset="open_inference", input_datatype="INT8")
