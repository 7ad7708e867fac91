"""The open_inference preset against a scripted Open Inference Protocol server (httpx.MockTransport).

Layout and datatype from the model's metadata, the classification extension's
top-k strings, the binary tensor extension both ways, each server's error
bodies and overload signals, and a server that is not ready yet.
"""

import json

import httpx
import numpy as np
import pytest
from _oip import LABELS, SHAPE, OipServer, model_for, scores_of

from bar_sdk import AuthenticationError, InvalidInputError, RemoteError, ResponseFormatError, TransientError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.adapters.remote.flight import KeyedAnswers
from bar_sdk.adapters.remote.http import HttpResponse
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.presets.base import DenseAnswers
from bar_sdk.adapters.remote.presets.open_inference import (
    HEADER_LENGTH,
    Levels,
    OpenInferencePreset,
    decode_tensors,
    encode_tensors,
    parse_classification,
)

X = np.random.default_rng(0).random((3, *SHAPE)).astype(np.float32)
Q = np.rint(X * np.float32(255)).astype(np.uint8)


# -- the wire format ------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_tensor_codec_round_trips_numbers_and_bytes(binary):
    a = np.random.default_rng(1).random((2, 3, 4)).astype(np.float32)
    b = np.arange(12, dtype=np.uint8).reshape(3, 4)
    s = [b"0.5:1:cat", b"", "\u00e9".encode()]
    tensors = [
        ({"name": "a", "datatype": "FP32", "shape": [2, 3, 4]}, a),
        ({"name": "b", "datatype": "UINT8", "shape": [3, 4]}, b),
        ({"name": "s", "datatype": "BYTES", "shape": [3]}, s),
    ]
    body, n_header = encode_tensors({"id": "7"}, "outputs", tensors, binary)
    assert (n_header is not None) == binary
    if binary:  # no JSON number list: the raw tensors follow the header
        assert b'"data"' not in body[:n_header] and len(body) == n_header + a.nbytes + b.nbytes + 4 * 3 + 9 + 2
    doc, back = decode_tensors(body, n_header, "outputs", "test")
    assert doc["id"] == "7"
    np.testing.assert_array_equal(np.asarray(back[0][1], dtype=np.float32), a)  # exact: float32 survives JSON
    np.testing.assert_array_equal(back[1][1], b)
    assert back[2][1] == s


@pytest.mark.parametrize("datatype, scale", [("FP32", 255.0), ("FP64", 255.0), ("FP32", 1.0), ("UINT8", 1.0)])
def test_levels_write_exactly_what_the_plain_encoder_writes(datatype, scale):
    q = np.random.default_rng(2).integers(0, 256, (2, 3, 4, 5), dtype=np.uint8).transpose(0, 2, 3, 1)  # a view
    plain = q.astype(np.dtype("<f4" if datatype == "FP32" else "<f8" if datatype == "FP64" else "u1"))
    if scale != 1.0:
        plain /= plain.dtype.type(scale)
    meta = {"name": "x", "datatype": datatype, "shape": list(q.shape)}
    for binary in (False, True):
        fast = encode_tensors({}, "inputs", [(meta, Levels(q, datatype, scale))], binary)
        assert fast == encode_tensors({}, "inputs", [(meta, plain)], binary)


def test_uint8_levels_are_the_batch_itself_not_a_copy():
    q = np.random.default_rng(3).integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)
    assert np.shares_memory(Levels(q, "UINT8").values(), q)  # the body's join is the only copy
    assert not np.shares_memory(Levels(q, "FP32", 255.0).values(), q)


@pytest.mark.parametrize(
    "body, header, match",
    [
        (
            b'{"outputs": [{"name": "o", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]}',
            None,
            "does not fit",
        ),
        (b'{"outputs": [{"name": "o", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}', None, "needs 3"),
        (b'{"outputs": [{"name": "o", "datatype": "COMPLEX", "shape": [1], "data": [1]}]}', None, "datatype"),
        (b'{"outputs": [{"name": "o", "datatype": "FP32", "shape": [1], "data": ["x"]}]}', None, "expected numbers"),
        (b'{"outputs": [{"name": "o", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None, "non-negative"),
        (b'{"result": 1}', None, "no 'outputs'"),
        (b'{"outputs": []}xxxx', "999", "body has"),
    ],
)
def test_tensor_codec_refuses_bodies_that_do_not_add_up(body, header, match):
    with pytest.raises(ResponseFormatError, match=match):
        decode_tensors(body, header, "outputs", "test")


def test_classification_strings_with_and_without_labels():
    assert parse_classification(b"0.25:3:tabby cat", "w") == (0.25, 3, "tabby cat")
    assert parse_classification(b"1e-3:0", "w") == (0.001, 0, None)
    assert parse_classification(b"0.5:2:a:b", "w") == (0.5, 2, "a:b")  # a label may hold colons
    for bad in (b"cat", b"0.5", b"0.5:x", b"nan:1", b"0.5:-1"):
        with pytest.raises(ResponseFormatError, match="score"):
            parse_classification(bad, "w")


# -- layout and datatype from the metadata ------------------------------------------------------


@pytest.mark.parametrize(
    "datatype, dims, layout",
    [
        ("FP32", (-1, 3, 4, 5), "NCHW"),
        ("FP32", (-1, 4, 5, 3), "NHWC"),
        ("UINT8", (-1, 4, 5, 3), "NHWC"),
        ("FP64", (-1, 60), "FLAT"),
        ("UINT8", (-1, 3, -1, -1), "NCHW"),
    ],
)
def test_layout_and_datatype_are_read_from_the_metadata(datatype, dims, layout):
    server = OipServer(datatype=datatype, dims=dims, layout=layout)
    model = model_for(server)
    p = model.predict_proba(X)
    np.testing.assert_allclose(p, scores_of(Q / 255.0), atol=1e-6)  # float32 output tensor
    meta, sent = server.inputs[0]
    assert meta["name"] == "pixels" and meta["datatype"] == datatype
    expect = {"NCHW": Q, "NHWC": Q.transpose(0, 2, 3, 1), "FLAT": Q.reshape(3, -1)}[layout]
    assert list(sent.shape) == list(expect.shape)
    if datatype == "UINT8":
        np.testing.assert_array_equal(sent, expect)
    else:  # the 8-bit image itself, as k / 255 in the tensor's type: nothing finer than a level is sent
        np.testing.assert_array_equal(np.rint(np.asarray(sent) * 255), expect)
        np.testing.assert_array_equal(np.asarray(sent, dtype=np.float32), expect.astype(np.float32) / np.float32(255))
    assert server.paths("GET") == ["/v2/health/ready", "/v2/models/m/ready", "/v2/models/m", "/v2"]
    assert model.ledger.billed == 3 and model.ledger.attempts == 3


def test_given_layout_skips_the_metadata_and_prepare_runs_once():
    server = OipServer(dims=(-1, 4, 5, 3), layout="NHWC")
    model = model_for(server, input_name="pixels", datatype="FP32", layout="NHWC", binary=False)
    model.predict_proba(X[:1])
    model.predict_proba(X[1:])
    assert server.paths("GET") == ["/v2/health/ready", "/v2/models/m/ready"]
    assert server.paths("POST") == ["/v2/models/m/infer"] * 2


def test_a_shape_the_model_does_not_take_is_refused_before_any_paid_request():
    server = OipServer(dims=(-1, 3, 8, 8))
    model = model_for(server, max_queries=3)
    with pytest.raises(InvalidInputError, match=r"takes shape \[3, 8, 8\].*input_shape=\(3, 4, 5\)"):
        model.predict_proba(X)
    assert server.paths("POST") == [] and model.ledger.billed == 0 and model.ledger.in_flight == 0
    with pytest.raises(InvalidInputError, match="does not say its layout"):
        model_for(OipServer(dims=(-1, -1, -1, -1))).predict_proba(X)
    with pytest.raises(InvalidInputError, match="datatype 'INT64'"):
        model_for(OipServer(datatype="INT64")).predict_proba(X)


def test_versions_path_and_bearer_key():
    server = OipServer()
    model = model_for(server, model_version="2", api_key="tok-SECRET")
    model.predict_proba(X[:1])
    assert server.paths("POST") == ["/v2/models/m/versions/2/infer"]
    assert all(r.headers["authorization"] == "Bearer tok-SECRET" for r in server.requests)


def test_same_8bit_image_is_paid_once():
    server = OipServer()
    model = model_for(server)
    level = Q[:1].astype(np.float32) / np.float32(255)
    nudged = np.clip(level + np.float32(0.3 / 255), 0, 1)  # rounds to the same 8-bit image
    model.predict_proba(level)
    model.predict_proba(nudged)
    assert model.ledger.billed == 1 and model.ledger.cache_hits == 1 and len(server.paths("POST")) == 1


# -- outputs: top-k strings, logits, binary -----------------------------------------------------


@pytest.mark.parametrize("with_labels", [False, True])
def test_classification_extension_top_k(with_labels):
    server = OipServer(classification_labels=with_labels)
    model = model_for(server, classification=2)
    p = model.predict_proba(X)
    want = scores_of(Q / 255.0)
    top2 = np.zeros_like(want)
    for i, row in enumerate(want):
        for j in np.argsort(-row, kind="stable")[:2]:
            top2[i, j] = row[j]
    np.testing.assert_allclose(p, top2, atol=1e-6)  # the left-out class scores 0
    sent = json.loads(server.requests[-1].content)
    assert sent["outputs"] == [{"name": "probs", "parameters": {"classification": 2}}]


def test_binary_extension_used_when_the_server_offers_it():
    server = OipServer(binary=True, datatype="UINT8")
    model = model_for(server)
    p = model.predict_proba(X)
    np.testing.assert_allclose(p, scores_of(Q / 255.0), atol=1e-6)
    req = server.requests[-1]
    n_header = int(req.headers[HEADER_LENGTH])
    assert req.headers["content-type"] == "application/octet-stream"
    assert len(req.content) == n_header + Q.nbytes and req.content[n_header:] == Q.tobytes()
    assert json.loads(req.content[:n_header])["outputs"][0]["parameters"]["binary_data"] is True


def test_binary_classification_and_forced_json():
    server = OipServer(binary=True)
    p = model_for(server, classification=1).predict_proba(X)
    assert (np.count_nonzero(p, axis=1) == 1).all()
    plain = OipServer(binary=True)
    model_for(plain, binary=False).predict_proba(X)
    assert HEADER_LENGTH.lower() not in plain.requests[-1].headers


def test_logits_and_scores_that_are_not_probabilities():
    logits = {
        "model_name": "m",
        "outputs": [{"name": "probs", "datatype": "FP32", "shape": [1, 3], "data": [2.0, 0.0, -1.0]}],
    }
    p = model_for(OipServer(infer_replies=[(200, logits)]), scores="logits").predict_proba(X[:1])
    e = np.exp([2.0, 0.0, -1.0])
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-12)
    with pytest.raises(ResponseFormatError, match="scores='logits'"):
        model_for(OipServer(infer_replies=[(200, logits)] * 3)).predict_proba(X[:1])
    wrong = {"outputs": [{"name": "probs", "datatype": "FP32", "shape": [1, 4], "data": [0.25] * 4}]}
    with pytest.raises(ResponseFormatError, match="one per label"):
        model_for(OipServer(infer_replies=[(200, wrong)] * 3)).predict_proba(X[:1])


# -- error bodies and overload ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, error, kind",
    [
        (503, "Exceeds maximum queue size", "throttled"),  # Triton
        (400, "Model m with version 1 is not ready yet.", "transient"),  # MLServer
        (500, "queue full", "transient"),  # KServe
        (429, "too many requests", "throttled"),
    ],
)
def test_overload_is_retried_then_answered(status, error, kind):
    sleeps = []
    server = OipServer(infer_replies=[(status, {"error": error})] * 2)
    model = model_for(server, sleeps=sleeps, max_queries=3)
    p = model.predict_proba(X)
    np.testing.assert_allclose(p, scores_of(Q / 255.0), atol=1e-6)
    assert len(server.paths("POST")) == 3 and len(sleeps) == 2
    assert model.ledger.billed == 3 and model.ledger.retries == 2
    assert model.ledger.throttled == (2 if kind == "throttled" else 0)


def test_overload_stops_at_the_retry_policy():
    server = OipServer(infer_replies=[(503, {"error": "Exceeds maximum queue size"})] * 10)
    model = model_for(server, retry=RetryPolicy(max_attempts=3, jitter=0, initial=0.01))
    with pytest.raises(RemoteError, match="maximum queue size.*gave up after 3"):
        model.predict_proba(X)
    assert len(server.paths("POST")) == 3 and model.ledger.billed == 0 and model.ledger.in_flight == 0


@pytest.mark.parametrize(
    "status, error, cls",
    [
        (400, "unexpected shape for input 'pixels' for model 'm'", RemoteError),
        (400, "Model m not found", RemoteError),
        (422, "Unprocessable Entity", RemoteError),
        (401, "unauthorized", AuthenticationError),
    ],
)
def test_client_errors_are_not_retried_and_quote_the_error_body(status, error, cls):
    server = OipServer(infer_replies=[(status, {"error": error})] * 5)
    model = model_for(server, api_key="tok-SECRET")
    with pytest.raises(cls) as info:
        model.predict_proba(X)
    assert error in str(info.value) and "tok-SECRET" not in str(info.value)
    assert len(server.paths("POST")) == 1 and model.ledger.billed == 0


# -- readiness ---------------------------------------------------------------------------------


def test_not_ready_server_is_polled_before_the_first_paid_request():
    sleeps = []
    server = OipServer(ready_replies=[400, 503, 400])
    model = model_for(server, sleeps=sleeps)
    model.predict_proba(X)
    gets = server.paths("GET")
    assert gets[:4] == ["/v2/health/ready"] * 4 and gets[4] == "/v2/models/m/ready"
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)  # growing pauses
    first_post = next(i for i, r in enumerate(server.requests) if r.method == "POST")
    assert first_post > max(i for i, r in enumerate(server.requests) if r.url.path.endswith("/ready"))


def test_a_server_that_never_gets_ready_fails_without_spending():
    server = OipServer(ready_replies=[503] * 1000)
    model = model_for(server, ready_timeout=1.0, max_queries=3)
    with pytest.raises(TransientError, match="ready_timeout=1"):
        model.predict_proba(X)
    assert server.paths("POST") == [] and model.ledger.billed == 0 and model.ledger.in_flight == 0
    assert model.ledger.remaining == 3


def test_unknown_model_fails_fast_naming_it():
    def handler(request):
        return httpx.Response(
            200 if request.url.path == "/v2/health/ready" else 404, json={"error": "Model nosuch not found"}
        )

    model = RemoteModel.from_preset(
        "open_inference",
        base_url="http://127.0.0.1:9",
        model_name="nosuch",
        labels=LABELS,
        input_shape=SHAPE,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    with pytest.raises(RemoteError, match="model_name='nosuch'"):
        model.predict_proba(X)


def test_constructor_checks_name_the_parameter():
    for kw, match in (
        ({"model_name": ""}, "model_name"),
        ({"model_name": "m", "datatype": "INT8"}, "datatype"),
        ({"model_name": "m", "layout": "CHW"}, "layout"),
        ({"model_name": "m", "classification": 0}, "classification"),
        ({"model_name": "m", "binary": "yes"}, "binary"),
        ({"model_name": "m", "ready_timeout": -1}, "ready_timeout"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            OpenInferencePreset(**kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_is_the_reference_rounding_at_every_level_boundary(dtype):
    from bar_sdk.adapters.remote import quantize

    halves = (np.arange(256)[:, None] + np.array([-0.5, 0.5])[None]).ravel() / 255
    x = np.clip(
        np.concatenate(
            [halves, np.nextafter(halves, 2), np.nextafter(halves, -1), np.random.default_rng(3).random(5000)]
        ),
        0,
        1,
    ).astype(dtype)
    reference = np.rint(x.astype(np.float32) * np.float32(255.0)).astype(np.uint8)
    np.testing.assert_array_equal(quantize(x), reference)


def test_readiness_refused_credentials_fail_at_once_without_the_key():
    def handler(request):
        return httpx.Response(401, json={"error": "bad token tok-SECRET"})  # a server that echoes the key

    sleeps = []
    model = RemoteModel.from_preset(
        "open_inference",
        base_url="http://127.0.0.1:9",
        model_name="m",
        labels=LABELS,
        input_shape=SHAPE,
        api_key="tok-SECRET",
        sleep=sleeps.append,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    with pytest.raises(AuthenticationError) as info:
        model.predict_proba(X)
    assert "tok-SECRET" not in str(info.value) and sleeps == [] and model.ledger.attempts == 0


# -- answers kept as one block (DenseAnswers) ----------------------------------------------------


def test_dense_answers_are_a_read_only_sequence_of_per_image_dicts():
    rows = np.array([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0]])
    block = DenseAnswers(LABELS, rows)
    rows[0, 0] = 9.0  # the block holds its own copy
    assert len(block) == 2 and block[1] == {"cat": 0.0, "dog": 1.0, "fish": 0.0}
    assert list(block) == block[:] == [{"cat": 0.5, "dog": 0.25, "fish": 0.25}, block[1]]
    with pytest.raises(ValueError, match="read-only"):
        block.rows[0, 0] = 1.0
    with pytest.raises(ValueError, match=r"expected \(n, 3\)"):
        DenseAnswers(LABELS, np.zeros((2, 4)))
    keyed = KeyedAnswers(["k0", "k1"], block)
    assert dict(keyed) == {"k0": block[0], "k1": block[1]} and "k1" in keyed and "k2" not in keyed
    with pytest.raises(ValueError, match="2 keys for 1 answers"):
        KeyedAnswers(["k0", "k1"], DenseAnswers(LABELS, rows[:1]))


@pytest.mark.parametrize(
    "mapper",
    [
        LabelMapper(LABELS),
        LabelMapper(LABELS, label_only=True),
        LabelMapper(LABELS, aliases={"cat": "dog"}),  # a name sent to another label: not in order any more
        LabelMapper(["fish", "cat", "dog"]),  # another order than the block's columns
    ],
    ids=["in order", "label only", "alias", "reordered"],
)
def test_a_scores_tensor_is_read_as_one_block_that_maps_as_its_dicts_do(mapper):
    server = OipServer(binary=True)
    preset = model_for(server).preset
    p = scores_of(Q / 255.0).astype(np.float32)
    p[1] = [0.4, 0.4, 0.2]  # a tie: label_only takes the first, as to_vector does
    out = ({"name": "probs", "datatype": "FP32", "shape": [3, 3]}, p)
    body, n_header = encode_tensors({"model_name": "m"}, "outputs", [out], True)
    block = preset.parse(HttpResponse(200, {HEADER_LENGTH.lower(): str(n_header)}, body), 3)
    assert isinstance(block, DenseAnswers) and block.labels == tuple(LABELS)
    expected = np.stack([mapper.to_vector(answer) for answer in block])
    np.testing.assert_array_equal(mapper.to_matrix(block), expected)
    np.testing.assert_array_equal(mapper.to_matrix(list(block)), expected)


@pytest.mark.parametrize("use_cache", [True, False])
def test_block_answers_fill_repeated_cached_and_new_images_in_order(use_cache):
    server = OipServer(binary=True)
    model = model_for(server, use_cache=use_cache, max_batch=2)
    model.predict_proba(X[:1])
    rng = np.random.default_rng(1)
    more = rng.random((2, *SHAPE)).astype(np.float32)
    x = np.concatenate([more[:1], X[:1], more[:1], X[1:], more[1:]])  # new, cached, repeated, new, new
    p = model.predict_proba(x)
    q = np.rint(x * np.float32(255)) / 255.0
    np.testing.assert_allclose(p, scores_of(q).astype(np.float32), rtol=0, atol=0)
    sent = 1 + (4 if use_cache else 5)  # the first call's image, then the second's distinct ones (less the cached)
    assert model.ledger.billed == sent == sum(len(values) for _, values in server.inputs)
    assert model.ledger.cache_hits == (2 if use_cache else 1)


def test_waiters_read_their_images_from_a_block_answered_to_another_thread():
    import threading
    import time

    server = OipServer(binary=True)
    started = threading.Barrier(2, timeout=10)

    def slow(request):
        if request.method == "POST":
            time.sleep(0.2)
        return server(request)

    model = model_for(slow, use_cache=False)  # no cache: the second call can only read the flight
    model.predict_proba(X[:1])  # readiness and metadata, before the race
    results = [None, None]

    def call(i, x):
        started.wait()
        results[i] = model.predict_proba(x)

    threads = [threading.Thread(target=call, args=(0, X)), threading.Thread(target=call, args=(1, X[1:]))]
    threads[0].start()
    time.sleep(0.05)  # the first call's request is in flight when the second asks for two of its images
    threads[1].start()
    for t in threads:
        t.join(10)
    sent = sum(len(values) for _, values in server.inputs)
    np.testing.assert_array_equal(results[1], results[0][1:])
    assert model.ledger.billed == sent == 1 + 3 and model.ledger.cache_hits == 2
