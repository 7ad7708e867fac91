"""Hostile answers: every preset's response reader, fuzzed.

Bodies come three ways: arbitrary bytes, arbitrary JSON (NaN, infinities, huge integers, deep
nesting), and a valid answer of each vendor with parts replaced by hostile values (wrong types,
NaN, negative or > 1 scores, unknown and duplicate labels, missing fields, wrong counts). The
only outcomes allowed are the documented ones: a :class:`~bar_sdk.errors.RemoteError`
(``ResponseFormatError`` for a body that cannot be read), or scores that are finite and in
[0, 1]. Never a TypeError, KeyError, IndexError, RecursionError or an error from numpy.
"""

import copy
import json
import math

import httpx
import numpy as np
import pytest
from _extras import preset_params
from _figures import examples, record
from hypothesis import HealthCheck, given, settings, strategies as st

from bar_sdk import BarError, RemoteError, ResponseFormatError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.adapters.remote.http import HttpResponse
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.presets import make_preset

LABELS = ["cat", "dog", "Tiger_cat"]
SHAPE = (3, 4, 4)


def entries(label_key, score_key, scale=1.0):
    return [
        {label_key: "cat", score_key: 0.5 * scale},
        {label_key: "dog", score_key: 0.25 * scale},
        {label_key: "tiger cat", score_key: 0.125 * scale},
        {label_key: "other", score_key: 0.1 * scale},
    ]


def clarifai_ok(n):
    return {
        "status": {"code": 10000, "description": "Ok"},
        "outputs": [{"status": {"code": 10000}, "data": {"concepts": entries("name", "value")}}] * n,
    }


def aws_ok(n):
    labels = entries("Name", "Confidence", 100.0)
    labels[0]["Aliases"] = [{"Name": "kitty"}]
    return {"Labels": labels, "LabelModelVersion": "3.0"}


# preset name -> (options, images per request it allows, a valid answer for n images)
PRESETS = {
    "clarifai": ({"model_id": "m"}, 3, clarifai_ok),
    "google_vision": ({}, 3, lambda n: {"responses": [{"labelAnnotations": entries("description", "score")}] * n}),
    "aws_rekognition": ({"region": "us-east-1"}, 1, aws_ok),
    "azure_vision": ({}, 1, lambda n: {"tagsResult": {"values": entries("name", "confidence")}}),
    "azure_vision_v3.2": ({"api_version": "v3.2"}, 1, lambda n: {"tags": entries("name", "confidence")}),
    "huggingface": ({"model": "org/m"}, 1, lambda n: entries("label", "score")),
    "torchserve": ({"model": "m"}, 1, lambda n: {"cat": 0.5, "dog": 0.25, "tiger cat": 0.125}),
    "generic": ({"labels_path": "predictions"}, 1, lambda n: {"predictions": entries("label", "score")}),
    "generic_batch": (
        {
            "path": "/v1",
            "request_template": {"items": [{"img": "{image_b64}"}]},
            "batch_path": "items",
            "batch_size": 3,
            "results_path": "results",
            "labels_path": "top",
            "score_key": "p",
            "score_scale": 100.0,
        },
        3,
        lambda n: {"results": [{"top": entries("label", "p", 100.0)}] * n},
    ),
}


def preset(name):
    options, _, _ = PRESETS[name]
    return make_preset(name.split("_v3")[0].replace("_batch", ""), **options)


# -- strategies ----------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["cat", "DOG", "tiger_cat", "Tiger Cat", "unknown", "", "NaN", "10000"])
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.text(max_size=8)
            | st.sampled_from(["status", "code", "outputs", "data", "concepts", "name", "value", "Labels", "error"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


def paths(obj, prefix=()):
    """Every place in a JSON document: dict keys and list positions."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def mutate(body, path, how, value):
    body = copy.deepcopy(body)
    if not path:
        return value if how == "replace" else body
    *head, last = path
    parent = body
    for part in head:
        parent = parent[part]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif how == "duplicate":
        parent[str(last) + "_"] = copy.deepcopy(parent[last])
    return body


@st.composite
def hostile_bodies(draw, name):
    """A valid answer of ``name`` for n images, then one to three parts of it made hostile."""
    _, per_request, ok = PRESETS[name]
    n = draw(st.integers(1, per_request))
    body = ok(draw(st.sampled_from([n, n, n - 1, n + 1])) if per_request > 1 else 1)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(body))))
        how = draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
        body = mutate(body, where, how, draw(SCALARS | ANY_JSON))
    return n, json.dumps(body).encode()  # NaN and Infinity travel as the tokens Python's json accepts


def raw_bodies(name):
    per_request = PRESETS[name][1]
    return st.tuples(
        st.integers(1, per_request),
        st.binary(max_size=200)
        | ANY_JSON.map(lambda v: json.dumps(v).encode())
        | st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"1" + b"0" * 400, b"-" * 10]),
    )


BODIES = {name: hostile_bodies(name) | raw_bodies(name) for name in PRESETS}


# -- the readers ---------------------------------------------------------------------------------


def check_answers(answers, n):
    assert isinstance(answers, list) and len(answers) <= max(n, 1)
    for answer in answers:
        if isinstance(answer, RemoteError):
            continue
        assert isinstance(answer, dict)
        for label, value in answer.items():
            assert isinstance(label, str)
            assert value is None or (isinstance(value, float) and 0.0 <= value <= 1.0)
        for label_only in (False, True):
            try:
                vector = LabelMapper(LABELS, label_only=label_only).to_vector(answer)
            except ResponseFormatError:
                continue
            assert vector.shape == (len(LABELS),) and np.all(np.isfinite(vector))
            assert vector.min() >= 0.0 and vector.max() <= 1.0


@pytest.mark.parametrize("name", preset_params(PRESETS))
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), status=st.sampled_from([200] * 8 + [201, 400, 401, 403, 404, 429, 500, 503]))
def test_every_reader_gives_scores_in_range_or_a_documented_error(name, data, status):
    n, body = data.draw(BODIES[name])
    headers = data.draw(
        st.sampled_from(
            [
                {},
                {"Retry-After": "1e999"},
                {"Retry-After": "-5"},
                {"Retry-After": "Wed, 21 Oct 2999 07:28:00 GMT"},
                {"x-amzn-ErrorType": "ThrottlingException"},
            ]
        )
    )
    response = HttpResponse(status, headers, body)
    p = preset(name)
    try:
        p.check(response)  # any RemoteError: throttled, refused, failed, unreadable
    except RemoteError:
        record("fuzz_parsers", cases=1)
        return
    try:
        answers = p.parse(response, n)
    except ResponseFormatError:  # the one error a reader raises
        pass
    else:
        check_answers(answers, n)
    record("fuzz_parsers", cases=1)


# -- end to end: the client under hostile answers -------------------------------------------------


@pytest.mark.parametrize("name", preset_params(["clarifai", "huggingface", "generic_batch", "aws_rekognition"]))
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_client_returns_valid_scores_or_raises_a_documented_error(name, data):
    n, body = data.draw(BODIES[name])
    key = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG") if name == "aws_rekognition" else "k3y"
    model = RemoteModel(
        preset(name),
        labels=LABELS,
        input_shape=SHAPE,
        base_url="https://api.example.com",
        api_key=key,
        retry=RetryPolicy(max_attempts=2, max_malformed=2, jitter=0),
        client=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body))),
        sleep=lambda s: None,
    )
    x = np.random.default_rng(0).random((n, *SHAPE)).astype(np.float32)
    with model:
        try:
            scores = model.predict_proba(x)
        except BarError as err:
            assert isinstance(err, RemoteError), repr(err)
        else:
            assert scores.shape == (n, len(LABELS)) and np.all(np.isfinite(scores))
            assert scores.min() >= 0.0 and scores.max() <= 1.0
        assert model.ledger.in_flight == 0
    record("fuzz_client", cases=1)


def test_huge_and_deeply_nested_numbers_are_format_errors():
    for body in (b'[{"label": "cat", "score": 1' + b"0" * 400 + b"}]", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(ResponseFormatError):
            preset("huggingface").parse(HttpResponse(200, {}, body), 1)
    assert math.isnan(json.loads(b"NaN"))  # why NaN is fuzzed: the reader accepts the token


# -- size ----------------------------------------------------------------------------------------


class Endless(httpx.SyncByteStream):
    """A 200 body of ``size`` bytes, produced lazily, that counts what was read of it."""

    def __init__(self, size, chunk=1 << 20):
        self.size, self.chunk, self.read = size, chunk, 0

    def __iter__(self):
        yield b'{"status": {"code": 10000}, "outputs": [{"data": {"concepts": []}}]}'
        while self.read < self.size:
            self.read += self.chunk
            yield b" " * self.chunk


@pytest.mark.parametrize("declared", [False, True])
def test_an_oversized_answer_is_refused_without_reading_it_whole(declared):
    cap, size = 1 << 20, 4 << 20
    stream = Endless(size, chunk=64 << 10)
    headers = {"Content-Length": str(size + 70)} if declared else {}
    model = RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key="k",
        model_id="m",
        labels=LABELS,
        input_shape=SHAPE,
        max_response_bytes=cap,  # the default RetryPolicy: an oversized answer is not retried
        client=httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(200, headers=headers, stream=stream))
        ),
    )
    with model, pytest.raises(ResponseFormatError, match="max_response_bytes"):
        model.predict_proba(np.zeros((1, *SHAPE), np.float32))
    assert stream.read <= cap + (64 << 10) and (stream.read == 0 or not declared)
    assert model.ledger.requests == 1 and model.ledger.retries == 0
    assert model.ledger.unconfirmed == 1 and model.ledger.billed == 0 and model.ledger.in_flight == 0
