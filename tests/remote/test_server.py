"""The local cloud-like server on its own: real HTTP on 127.0.0.1."""

import base64

import httpx
import numpy as np
import pytest
from _extras import requires

from bar_sdk import InvalidInputError
from bar_sdk.adapters.remote import encode_image
from bar_sdk.adapters.server import DemoModel, Faults, create_app, serve
from bar_sdk.adapters.server.cli import add_arguments, add_parser, load_model

pytestmark = requires("server")  # the server extra: the app, and the command line that starts it

SHAPE = (1, 8, 8)
MODEL = DemoModel(SHAPE, n_classes=6, random_state=1)


def png_b64(img):
    return base64.b64encode(encode_image(img)).decode()


def clarifai_body(imgs, **config):
    body = {"inputs": [{"data": {"image": {"base64": png_b64(i)}}} for i in imgs]}
    if config:
        body["model"] = {"output_info": {"output_config": config}}
    return body


def imgs(n, seed=0):
    return list(np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8))


CLIENT = httpx.Client(timeout=10)  # one client: building one per request costs more than the request


def teardown_module(module):
    CLIENT.close()


def post(server, body, key="test-key", path="/v2/models/m/outputs"):
    return CLIENT.post(server.base_url + path, json=body, headers={"Authorization": f"Key {key}"})


def test_answers_are_the_models_scores_top_k_and_billed_per_image():
    x = imgs(3)
    with serve(MODEL) as server:
        r = post(server, clarifai_body(x, max_concepts=4))
        assert r.status_code == 200
        outputs = r.json()["outputs"]
        expected = MODEL.predict_proba(np.stack(x))
        for out, row in zip(outputs, expected, strict=False):
            concepts = out["data"]["concepts"]
            assert [c["name"] for c in concepts] == [MODEL.labels[i] for i in np.argsort(-row)[:4]]
            np.testing.assert_allclose([c["value"] for c in concepts], np.sort(row)[::-1][:4], rtol=1e-6)
        assert server.billed == 3 and server.stats().answered == 1
        default = post(server, clarifai_body(x[:1])).json()["outputs"][0]["data"]["concepts"]
        assert len(default) == 6  # Clarifai's default 20, capped by the model's classes
        picked = post(server, clarifai_body(x[:1], select_concepts=[{"name": "class_5"}, {"name": "class_0"}]))
        assert [c["name"] for c in picked.json()["outputs"][0]["data"]["concepts"]] == ["class_5", "class_0"]


def test_auth_bad_requests_and_stats_are_not_billed():
    with serve(MODEL, api_keys=["k1", "k2"], admin_key="adm") as server:
        assert post(server, clarifai_body(imgs(1)), key="nope").status_code == 401
        r = CLIENT.post(server.base_url + "/v2/models/m/outputs", json=clarifai_body(imgs(1)))
        assert r.status_code == 401 and r.json()["status"]["code"] == 11008
        wrong = np.zeros((1, 4, 4), np.uint8)
        r = post(server, clarifai_body([wrong]), key="k2")
        assert r.status_code == 400 and "(1, 8, 8)" in r.json()["status"]["details"]
        assert post(server, {"inputs": "x"}, key="k1").status_code == 400
        assert post(server, clarifai_body(imgs(129)), key="k1").status_code == 400
        assert CLIENT.get(server.base_url + "/_stats").status_code == 401
        stats = CLIENT.get(server.base_url + "/_stats", headers={"X-Admin-Key": "adm"}).json()
        assert stats["billed"] == 0 and stats["unauthorized"] == 2 and stats["bad_requests"] == 3
        assert stats == server.stats().as_dict()


def test_per_key_rate_limit_answers_429_with_retry_after():
    with serve(MODEL, api_keys=["a", "b"], rate_limit=0.5, burst=2) as server:
        codes = [post(server, clarifai_body(imgs(1)), key="a").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = post(server, clarifai_body(imgs(1)), key="a")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["status"]["code"] == "CONN_THROTTLED"
        assert post(server, clarifai_body(imgs(1)), key="b").status_code == 200  # another key, its own bucket
        assert server.billed == 3 and server.stats().throttled == 2


def test_label_only_and_server_top_k_cap():
    x = imgs(2)
    with serve(MODEL, label_only=True) as server:
        outputs = post(server, clarifai_body(x, max_concepts=5)).json()["outputs"]
        top = np.argmax(MODEL.predict_proba(np.stack(x)), axis=1)
        assert [o["data"]["concepts"] for o in outputs] == [
            [{"id": MODEL.labels[i], "name": MODEL.labels[i], "app_id": "main"}] for i in top
        ]
    with serve(MODEL, top_k=2) as server:
        concepts = post(server, clarifai_body(x, max_concepts=5)).json()["outputs"][0]["data"]["concepts"]
        assert len(concepts) == 2


def test_faults_are_seeded_and_never_billed():
    def run(seed):
        faults = Faults(
            rate_429=0.2, rate_500=0.2, rate_malformed=0.2, rate_slow=0.1, slow_seconds=0.01, random_state=seed
        )
        with serve(MODEL, faults=faults) as server:
            codes, broken = [], 0
            for _ in range(30):
                r = post(server, clarifai_body(imgs(2)))
                codes.append(r.status_code)
                if r.status_code == 200:
                    try:
                        r.json()["outputs"]
                    except (ValueError, KeyError):
                        broken += 1
            return codes, broken, server.stats()

    codes, broken, stats = run(3)
    assert codes == run(3)[0] and codes != run(4)[0]
    assert stats.injected["429"] == codes.count(429) > 0 and stats.injected["500"] == codes.count(500) > 0
    assert stats.injected["malformed"] == broken > 0 and stats.injected["slow"] > 0
    assert stats.billed == 2 * (codes.count(200) - broken)


def test_huggingface_shape():
    x = imgs(1)
    with serve(MODEL, preset="huggingface") as server:
        url = server.base_url + "/models/org/xray-model"
        auth = {"Authorization": "Bearer test-key"}
        r = CLIENT.post(url, json={"inputs": png_b64(x[0]), "parameters": {"top_k": 3}}, headers=auth)
        row = MODEL.predict_proba(np.stack(x))[0]
        assert [d["label"] for d in r.json()] == [MODEL.labels[i] for i in np.argsort(-row)[:3]]
        raw = CLIENT.post(url, content=encode_image(x[0]), headers={**auth, "Content-Type": "image/png"})
        assert len(raw.json()) == 5  # the pipeline's default top 5
        assert CLIENT.post(url, content=b"x", headers={"Authorization": "Key test-key"}).status_code == 401
        assert server.billed == 2


def test_create_app_checks_its_arguments():
    with pytest.raises(InvalidInputError, match="preset"):
        create_app(MODEL, preset="acme")
    with pytest.raises(InvalidInputError, match="api_keys"):
        create_app(MODEL, api_keys="single-string")
    with pytest.raises(InvalidInputError, match="sum"):
        Faults(rate_429=0.6, rate_500=0.6)


def test_command_line_pieces():
    import argparse

    bar = argparse.ArgumentParser(prog="bar")
    add_parser(bar.add_subparsers(dest="command"))
    args = bar.parse_args(["serve", "--model", "demo", "--port", "0", "--rate", "5", "--fault-429", "0.1"])
    assert args.command == "serve" and args.rate == 5 and args.fault_429 == 0.1 and callable(args.func)
    assert add_arguments(argparse.ArgumentParser()).parse_args(["--preset", "huggingface"]).preset == "huggingface"
    assert load_model("demo", (3, 4, 4), 3).input_shape == (3, 4, 4)
    assert load_model("bar_sdk.adapters.server.demo:DemoModel").n_classes == 10  # a factory is called
    with pytest.raises(InvalidInputError, match="could not be loaded"):
        load_model("no.such.module:thing")
    with pytest.raises(InvalidInputError, match="expected 'demo'"):
        load_model("justaname")
