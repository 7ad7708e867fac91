"""RemoteModel against httpx.MockTransport: retries, budget, cache, secrets (no sockets, no real time)."""

import asyncio
import base64
import copy
import json
import logging
import pickle
import threading

import httpx
import numpy as np
import pytest

from bar_sdk import (
    AuthenticationError,
    CheckpointError,
    InvalidInputError,
    QueryBudgetExceeded,
    RateLimitError,
    RemoteError,
    ResponseFormatError,
    TransientError,
)
from bar_sdk.adapters.remote import AnswerCache, RemoteModel, RetryPolicy, TokenBucket, decode_image, quantize
from bar_sdk.adapters.remote.labels import LabelMapper

KEY = "sk-live-SECRET-4242"
LABELS = ["normal", "pneumonia", "covid"]
SHAPE = (1, 4, 4)


def images(n, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE)).astype(np.float32)


def decoded(request):
    """uint8 images a Clarifai request carries."""
    body = json.loads(request.content)
    return [decode_image(base64.b64decode(item["data"]["image"]["base64"])) for item in body["inputs"]]


def clarifai_ok(request):
    outputs = []
    for img in decoded(request):
        m = float(img.mean()) / 255
        concepts = [
            {"id": "a", "name": "Normal", "value": m},
            {"id": "b", "name": "pneumonia", "value": 1 - m},
            {"id": "c", "name": "cat", "value": 0.5},
        ]
        outputs.append({"status": {"code": 10000, "description": "Ok"}, "data": {"concepts": concepts}})
    return httpx.Response(200, json={"status": {"code": 10000, "description": "Ok"}, "outputs": outputs})


class Recorder:
    """MockTransport handler: answers with ``script`` responses first, then ``ok(request)`` (Clarifai successes)."""

    def __init__(self, *script, ok=clarifai_ok):
        self.script = list(script)
        self.ok = ok
        self.requests = []
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            self.requests.append(request)
            step = self.script.pop(0) if self.script else None
        if step is None:
            return self.ok(request)
        if isinstance(step, Exception):
            raise step
        return step

    @property
    def images_sent(self):
        return sum(len(decoded(r)) for r in self.requests)


def make(handler, sleeps=None, preset="clarifai", retry=None, **kw):
    options = {"model_id": "xray-v1"} if preset == "clarifai" else {}
    options.update(kw)
    return RemoteModel.from_preset(
        preset,
        base_url="https://api.example.com",
        api_key=KEY,
        labels=LABELS,
        input_shape=SHAPE,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=(sleeps.append if sleeps is not None else None),
        retry=retry or RetryPolicy(jitter=0.0),
        **options,
    )


def err(status, body=None, headers=None):
    return httpx.Response(status, json=body if body is not None else {"status": {"code": 10020}}, headers=headers)


# -- answers, mapping, quantisation ---------------------------------------------------------------


def test_scores_follow_labels_and_missing_labels_score_zero():
    rec = Recorder()
    model = make(rec)
    x = images(3)
    p = model.predict_proba(x)
    m = quantize(x).reshape(3, -1).mean(axis=1) / 255
    assert p.shape == (3, 3) and p.dtype == np.float64
    np.testing.assert_allclose(p[:, 0], m, rtol=1e-6)  # "Normal" matched case-insensitively
    np.testing.assert_allclose(p[:, 1], 1 - m, rtol=1e-6)
    assert np.all(p[:, 2] == 0)  # "covid" not returned -> 0; "cat" ignored
    assert model.n_classes == 3 and model.labels == tuple(LABELS) and model.input_shape == SHAPE


def test_the_api_sees_the_8bit_image_and_the_optimizer_is_told():
    rec = Recorder()
    model = make(rec)
    x = images(2)
    model.predict_proba(x)
    sent = np.stack(decoded(rec.requests[0]))
    np.testing.assert_array_equal(sent, quantize(x))  # lossless PNG of the rounded image
    assert model.quantization_step == pytest.approx(1 / 255)
    # a change below half a level rounds away: same 8-bit image, answered from the cache
    levels = quantize(x) / np.float32(255)
    model.predict_proba(levels + np.where(levels < 0.5, 0.4, -0.4).astype(np.float32) / 255)
    assert len(rec.requests) == 1 and model.ledger.cache_hits == 2


def test_label_mapper_rules():
    mapper = LabelMapper(["tiger cat", "lynx", "other"], aliases={"Felis lynx": "lynx"}, missing_score=0.01)
    v = mapper.to_vector({"Tiger_cat": 0.4, "felis LYNX": 0.3, "dog": 0.9})
    np.testing.assert_allclose(v, [0.4, 0.3, 0.01])
    only = LabelMapper(["a", "b"], label_only=True)
    np.testing.assert_array_equal(only.to_vector({"x": None, "b": None, "a": None}), [0, 1])
    np.testing.assert_array_equal(only.to_vector({"a": 0.2, "b": 0.7}), [0, 1])
    with pytest.raises(InvalidInputError, match="same name"):
        LabelMapper(["Tiger cat", "tiger_cat"])
    with pytest.raises(ResponseFormatError, match="label_only=True"):
        LabelMapper(["a", "b"]).to_vector({"a": None})


def _stacked(mapper, answers):
    return np.stack([mapper.to_vector(a) for a in answers])


@pytest.mark.parametrize(
    "answers",
    [
        [{"a": 0.2, "b": 0.7, "c": 0.1}, {"a": 1.0, "b": 0.0, "c": 0.0}],  # every label, in order: one pass
        [{"a": 0.2, "b": 0.7, "c": 0.1}, {"c": 0.3, "a": 0.6, "b": 0.1}],  # one row in another order
        [{"a": 0.2, "b": 0.7, "c": 0.1}, {"a": 0.5, "b": 0.5}],  # one row leaves a label out
        [{"a": 0.2, "b": 0.7, "c": 0.1}, {"A": 0.5, "b": 0.4, "c": 0.1}],  # a name in another case
    ],
)
def test_label_mapper_matrix_equals_the_stacked_vectors(answers):
    mapper = LabelMapper(["a", "b", "c"], missing_score=0.05)
    np.testing.assert_array_equal(mapper.to_matrix(answers), _stacked(mapper, answers))
    assert mapper.to_matrix([]).shape == (0, 3)


def test_label_mapper_matrix_keeps_the_rules_of_aliases_label_only_and_missing_scores():
    # an alias that sends one label's name to another label: in-order answers must not be read as they are
    aliased = LabelMapper(["a", "b"], aliases={"a": "b"})
    answers = [{"a": 0.9, "b": 0.1}]
    np.testing.assert_array_equal(aliased.to_matrix(answers), _stacked(aliased, answers))
    np.testing.assert_array_equal(aliased.to_matrix(answers), [[0.0, 0.9]])
    only = LabelMapper(["a", "b"], label_only=True)
    np.testing.assert_array_equal(only.to_matrix([{"a": 0.2, "b": 0.7}, {"a": 0.9, "b": 0.1}]), [[0, 1], [1, 0]])
    with pytest.raises(ResponseFormatError, match="label_only=True"):
        LabelMapper(["a", "b"]).to_matrix([{"a": 0.5, "b": 0.5}, {"a": None, "b": 0.5}])


def test_image_keys_of_a_batch_equal_each_image_key():
    from bar_sdk.adapters.remote.cache import image_key, image_keys

    rng = np.random.default_rng(3)
    for shape in [(5, 1, 28, 28), (3, 3, 7, 9), (1, 1, 1, 1)]:
        q = rng.integers(0, 256, shape, dtype=np.uint8)
        assert image_keys(q, "model é") == [image_key(img, "model é") for img in q]
        strided = q[:, :, ::2]  # not contiguous: the same bytes hashed as a copy would be
        assert image_keys(strided, "m") == [image_key(img, "m") for img in strided]
    q = rng.integers(0, 256, (2, 1, 4, 4), dtype=np.uint8)
    assert len(set(image_keys(q, "m") + image_keys(q, "other"))) == 4  # the identity is part of the key
    assert image_keys(q[:, :, :2], "m") != image_keys(q[:, :, :2].reshape(2, 1, 1, 8), "m")  # and the shape


def test_jpeg_only_on_request_with_a_warning():
    with pytest.warns(UserWarning, match="lossy"):
        model = make(Recorder(), image_format="jpeg")
    assert model.image_format == "jpeg"


@pytest.mark.parametrize(
    "bad", [np.full((1, *SHAPE), 1.5, np.float32), np.zeros((1, 1, 5, 5), np.float32), np.zeros((1, *SHAPE), np.int64)]
)
def test_bad_images_are_refused_before_any_request(bad):
    rec = Recorder()
    with pytest.raises(InvalidInputError):
        make(rec).predict_proba(bad)
    assert rec.requests == []


# -- retries, backoff, Retry-After, errors -----------------------------------------------------------


def test_exact_backoff_schedule_then_a_clear_give_up():
    rec = Recorder(*[err(503)] * 10)
    sleeps = []
    model = make(rec, sleeps, retry=RetryPolicy(max_attempts=6, initial=0.5, exp_base=2, maximum=30, jitter=0))
    with pytest.raises(TransientError, match=r"HTTP 503.*gave up after 6 attempt"):
        model.predict_proba(images(1))
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert len(rec.requests) == 6
    led = model.ledger
    assert (led.attempts, led.requests, led.retries, led.failures, led.billed, led.in_flight) == (6, 6, 5, 6, 0, 0)


def test_backoff_caps_at_maximum_and_jitter_is_seeded():
    def schedule(seed):
        sleeps = []
        model = make(
            Recorder(*[err(500)] * 10),
            sleeps,
            retry=RetryPolicy(max_attempts=7, initial=1, maximum=4, jitter=0.5, random_state=seed),
        )
        with pytest.raises(TransientError):
            model.predict_proba(images(1))
        return sleeps

    a, b, c = schedule(1), schedule(1), schedule(2)
    assert a == b and a != c
    base = [1, 2, 4, 4, 4, 4]
    assert all(lo <= s <= lo + 0.5 for s, lo in zip(a, base, strict=False)) and len(a) == 6


def test_retry_after_is_a_floor_in_seconds_or_http_date():
    sleeps = []
    rec = Recorder(err(429, headers={"Retry-After": "7"}), err(429, headers={"Retry-After": "0"}))
    model = make(rec, sleeps)
    model.predict_proba(images(1))
    assert sleeps == [7.0, 1.0]  # 7 > backoff 0.5; "0" leaves the backoff (1.0) in place
    assert model.ledger.throttled == 2 and model.ledger.billed == 1

    sleeps = []
    date = "Wed, 21 Oct 2099 07:28:00 GMT"  # far future: longer than max_delay, so give up at once
    model = make(Recorder(err(429, headers={"Retry-After": date})), sleeps)
    with pytest.raises(RateLimitError, match="gave up after 1 attempt"):
        model.predict_proba(images(1))
    assert sleeps == []


def test_total_delay_is_bounded():
    sleeps = []
    model = make(Recorder(*[err(502)] * 10), sleeps, retry=RetryPolicy(max_attempts=50, max_delay=3.0, jitter=0))
    with pytest.raises(TransientError, match="max_delay=3"):
        model.predict_proba(images(1))
    assert sleeps == [0.5, 1.0] and sum(sleeps) <= 3.0  # the next wait (2.0) would end past 3 s


@pytest.mark.parametrize("code", ["CONN_THROTTLED", 11005, "11005"])
def test_clarifai_throttle_body_is_retried_whatever_the_code_type(code):
    sleeps = []
    throttled = httpx.Response(429, json={"status": {"code": code, "description": "Making too many requests"}})
    model = make(Recorder(throttled), sleeps)
    assert model.predict_proba(images(2)).shape == (2, 3)
    assert model.ledger.throttled == 1 and model.ledger.billed == 2 and len(sleeps) == 1


def test_huggingface_loading_waits_estimated_time():
    sleeps = []
    loading = httpx.Response(503, json={"error": "Model x is currently loading", "estimated_time": 20.0})

    def answer(request):
        return httpx.Response(200, json=[{"label": "normal", "score": 0.8}, {"label": "covid", "score": 0.1}])

    model = make(Recorder(loading, ok=answer), sleeps, preset="huggingface", model="org/xray")
    np.testing.assert_allclose(model.predict_proba(images(1)), [[0.8, 0, 0.1]])
    assert sleeps == [20.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_fail_at_once(status):
    sleeps = []
    rec = Recorder(err(status, {"status": {"code": 21200, "description": "Model does not exist"}}))
    model = make(rec, sleeps)
    expected = AuthenticationError if status in (401, 403) else RemoteError
    with pytest.raises(expected, match=f"HTTP {status}") as info:
        model.predict_proba(images(3))
    assert len(rec.requests) == 1 and sleeps == []
    assert not isinstance(info.value, (TransientError, RateLimitError))
    assert model.ledger.billed == 0 and model.ledger.in_flight == 0


def test_clarifai_auth_code_and_account_limits_are_not_retried():
    rec = Recorder(err(401, {"status": {"code": "CONN_KEY_INVALID", "description": "Invalid API key"}}))
    with pytest.raises(AuthenticationError, match="not retried"):
        make(rec).predict_proba(images(1))
    rec = Recorder(err(429, {"status": {"code": 11004, "description": "monthly limit"}}))
    with pytest.raises(RateLimitError, match="will not help"):
        make(rec).predict_proba(images(1))
    assert len(rec.requests) == 1


def test_timeouts_and_connection_errors_are_retried():
    sleeps = []
    rec = Recorder(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"))
    model = make(rec, sleeps)
    assert model.predict_proba(images(1)).shape == (1, 3)
    assert len(sleeps) == 2 and model.ledger.failures == 2 and model.ledger.billed == 1
    assert model.ledger.attempts == 3


def test_requests_that_may_have_been_billed_are_counted_unconfirmed():
    # Sent, no answer (read timeout, dropped connection): the vendor may have billed the images.
    # Never sent (connect error or timeout): it cannot have. A 500 answered: not billed.
    rec = Recorder(
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        err(500),
    )
    model = make(rec, [], retry=RetryPolicy(max_attempts=6, jitter=0.0))
    model.predict_proba(images(3))
    led = model.ledger
    assert led.billed == 3 and led.failures == 5 and led.unconfirmed == 2 * 3
    assert model.state_dict()["ledger"]["unconfirmed"] == 6 and "unconfirmed=6" in repr(led)


def test_a_requests_session_timeout_is_unconfirmed_and_a_refused_connection_is_not():
    import requests
    import urllib3.exceptions as u3
    from requests.adapters import BaseAdapter

    failures = [
        requests.ReadTimeout("slow"),
        requests.ConnectionError(u3.MaxRetryError(None, "/", u3.NewConnectionError(None, "refused"))),
        requests.ConnectTimeout("slow"),
        requests.ConnectionError(u3.ProtocolError("Connection aborted.")),
    ]

    class Adapter(BaseAdapter):
        def send(self, request, **kwargs):
            raise failures.pop(0)

        def close(self):
            pass

    session = requests.Session()
    session.mount("https://", Adapter())
    model = RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key=KEY,
        model_id="m",
        labels=LABELS,
        input_shape=SHAPE,
        session=session,
        sleep=lambda s: None,
        retry=RetryPolicy(max_attempts=4, jitter=0.0),
    )
    with pytest.raises(TransientError):
        model.predict_proba(images(2))
    assert model.ledger.failures == 4 and model.ledger.unconfirmed == 2 * 2 and model.ledger.billed == 0


def test_an_unreadable_2xx_answer_counts_as_unconfirmed():
    # A 2xx answer was served, so the vendor may have billed it, though it could not be read (cut
    # JSON, a body without outputs). An error status (500) was not served: not counted.
    def script():
        return [
            httpx.Response(200, content=b'{"status": {"code": 10000}, "outputs": ['),
            httpx.Response(200, json={"status": {"code": 10000}}),
            err(500),
        ]

    rec = Recorder(*script())
    model = make(rec, [], retry=RetryPolicy(jitter=0.0))
    assert model.predict_proba(images(2)).shape == (2, 3)
    led = model.ledger
    assert len(rec.requests) == led.requests == 4 and led.failures == 3 and led.retries == 3
    assert led.billed == 2 and led.unconfirmed == 2 * 2 and led.in_flight == 0
    assert led.billed + led.unconfirmed == 3 * 2  # the images of every 2xx answer; the 500 was not served

    arec = Recorder(*script())

    async def run():
        async with httpx.AsyncClient(transport=httpx.MockTransport(arec)) as client:
            amodel = make(arec, [], async_client=client, retry=RetryPolicy(jitter=0.0))
            await amodel.apredict_proba(images(2))
            return amodel.ledger

    aled = asyncio.run(run())
    assert len(arec.requests) == aled.requests == 4 and aled.failures == 3
    assert aled.billed == 2 and aled.unconfirmed == 2 * 2 and aled.in_flight == 0

    # Given up on after max_malformed unreadable 2xx answers: every attempt may have been billed.
    rec = Recorder(*[httpx.Response(200, content=b"not json")] * 3)
    model = make(rec, [], retry=RetryPolicy(jitter=0.0, max_malformed=3))
    with pytest.raises(ResponseFormatError, match="gave up after 3 attempt"):
        model.predict_proba(images(1))
    assert model.ledger.billed == 0 and model.ledger.unconfirmed == 3 and model.ledger.in_flight == 0


def test_malformed_json_gives_a_clear_error_after_a_few_attempts():
    rec = Recorder(*[httpx.Response(200, content=b'{"status": {"code": 10000}, "outputs": [')] * 5)
    sleeps = []
    with pytest.raises(ResponseFormatError, match=r"not valid JSON.*gave up after 3 attempt"):
        make(rec, sleeps, retry=RetryPolicy(jitter=0, max_malformed=3)).predict_proba(images(1))
    assert len(rec.requests) == 3


@pytest.mark.parametrize(
    "body,match",
    [
        ({"status": {"code": 10000}}, "no field 'outputs'"),
        ({"status": {"code": 10000}, "outputs": [{"data": {"concepts": [{"value": 0.3}]}}]}, "no 'name' or 'id'"),
        (
            {"status": {"code": 10000}, "outputs": [{"data": {"concepts": [{"name": "normal", "value": "high"}]}}]},
            "expected a number",
        ),
        ({"status": {"code": 10000}, "outputs": []}, "0 entries for 1 image"),
    ],
)
def test_missing_fields_give_a_clear_error(body, match):
    rec = Recorder(*[httpx.Response(200, json=body)] * 3)
    with pytest.raises(ResponseFormatError, match=match):
        make(rec, [], retry=RetryPolicy(jitter=0, max_malformed=1)).predict_proba(images(1))
    assert len(rec.requests) == 1


def test_redirects_are_not_followed():
    rec = Recorder(httpx.Response(302, headers={"Location": "https://evil.example.net/"}))
    with pytest.raises(RemoteError, match="not followed"):
        make(rec).predict_proba(images(1))
    assert len(rec.requests) == 1


# -- secrets ----------------------------------------------------------------------------------------


def test_key_sent_as_documented_and_never_in_logs_reprs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    echo = err(401, {"status": {"code": 11008, "description": f"Invalid API key {KEY}"}})
    rec = Recorder(err(503), echo)
    model = make(rec, [])
    with pytest.raises(AuthenticationError) as info:
        model.predict_proba(images(1))
    assert rec.requests[0].headers["authorization"] == f"Key {KEY}"
    assert rec.requests[0].url.host == "api.example.com"
    texts = [
        caplog.text,
        repr(model),
        str(model.preset),
        repr(model.ledger),
        json.dumps(model.state_dict()),
        str(info.value),
        repr(info.value),
        repr(model._credentials),
    ]
    assert "retrying" in caplog.text  # the logs did say something
    assert all(KEY not in t for t in texts)
    assert "***" in str(info.value)  # the echoed key was redacted
    with pytest.raises(TypeError):
        pickle.dumps(model._credentials)


def test_key_with_a_trailing_newline_is_stripped_and_a_line_break_inside_refused(caplog):
    from bar_sdk.adapters.remote import Secret

    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    model = RemoteModel.from_preset(
        "clarifai",
        model_id="xray-v1",
        base_url="https://api.example.com",
        api_key=KEY + "\n",
        labels=LABELS,
        input_shape=SHAPE,
        client=httpx.Client(transport=httpx.MockTransport(rec)),
        retry=RetryPolicy(jitter=0.0),
    )
    model.predict_proba(images(1))  # a key read from a file: sent without its newline
    assert rec.requests[0].headers["authorization"] == f"Key {KEY}"
    with pytest.raises(InvalidInputError, match="control character") as info:
        Secret("sk-a\nb-SECRET")
    assert "SECRET" not in str(info.value)
    # the escaped form an exception message or a repr shows is redacted too
    assert Secret("k\\ey").redact(repr("k\\ey")) == "'***'"


def test_an_unreadable_answer_is_a_format_error_counted_as_maybe_billed():
    # a preset tripping on an odd value (here Clarifai's status code '²') and a body whose
    # Content-Encoding cannot be undone: both were served 2xx, so both may have been billed
    def odd(request):
        return httpx.Response(200, json={"status": {"code": "\u00b2"}, "outputs": []})

    def garbled(request):
        return httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip"))

    for answer in (odd, garbled):
        model = make(Recorder(ok=answer), [], retry=RetryPolicy(max_attempts=3, jitter=0.0))
        with pytest.raises(ResponseFormatError):
            model.predict_proba(images(2))
        led = model.ledger
        assert (led.billed, led.unconfirmed, led.failures, led.in_flight) == (0, 3 * 2, 3, 0)


def test_a_retry_that_could_bill_past_the_cap_is_not_sent():
    rec = Recorder(httpx.ReadTimeout("slow"))  # reached the API, no answer: maybe billed
    model = make(rec, [], retry=RetryPolicy(max_attempts=3, jitter=0.0), max_queries=2)
    with pytest.raises(QueryBudgetExceeded, match="may have been billed"):
        model.predict_proba(images(2))
    assert rec.images_sent == 2 and model.ledger.unconfirmed == 2 and model.ledger.remaining == 0
    rec = Recorder(httpx.ReadTimeout("slow"))  # with room for both, the retry goes out
    model = make(rec, [], retry=RetryPolicy(max_attempts=3, jitter=0.0), max_queries=4)
    model.predict_proba(images(2))
    assert rec.images_sent == 4 and model.ledger.billed == 2 and model.ledger.remaining == 0


def test_key_read_from_environment_and_required(monkeypatch):
    monkeypatch.delenv("CLARIFAI_PAT", raising=False)
    monkeypatch.delenv("CLARIFAI_API_KEY", raising=False)
    monkeypatch.delenv("BAR_API_KEY", raising=False)
    kw = dict(base_url="https://api.example.com", model_id="m", labels=LABELS, input_shape=SHAPE)
    with pytest.raises(InvalidInputError, match="CLARIFAI_PAT"):
        RemoteModel.from_preset("clarifai", **kw)
    monkeypatch.setenv("BAR_API_KEY", "from-env")
    rec = Recorder()
    model = RemoteModel.from_preset("clarifai", client=httpx.Client(transport=httpx.MockTransport(rec)), **kw)
    model.predict_proba(images(1))
    assert rec.requests[0].headers["authorization"] == "Key from-env"


def test_plain_http_only_to_loopback():
    kw = dict(api_key=KEY, model_id="m", labels=LABELS, input_shape=SHAPE)
    with pytest.raises(InvalidInputError, match="unencrypted"):
        RemoteModel.from_preset("clarifai", base_url="http://api.example.com", **kw)
    RemoteModel.from_preset("clarifai", base_url="http://api.example.com", allow_insecure=True, **kw)
    RemoteModel.from_preset("clarifai", base_url="http://127.0.0.1:9", **kw)
    with pytest.raises(InvalidInputError, match="base_url"):
        RemoteModel.from_preset("clarifai", base_url="ftp://x", **kw)


def test_credentials_in_base_url_are_refused_without_echoing_them():
    kw = dict(api_key=KEY, model_id="m", labels=LABELS, input_shape=SHAPE)
    for url in (
        "https://user:s3cret-pw@api.example.com",
        "https://s3cret-pw@api.example.com/v2",
        "https://:s3cret-pw@127.0.0.1:8000",
        "http://user:s3cret-pw@api.example.com",
    ):
        with pytest.raises(InvalidInputError, match="base_url.*credentials") as info:
            RemoteModel.from_preset("clarifai", base_url=url, allow_insecure=True, **kw)
        assert "s3cret-pw" not in str(info.value)
    # Refused for another reason first: the password is not echoed either.
    for url in (
        "http://user:s3cret-pw@api.example.com",
        "https://user:s3cret-pw@api.example.com/?q=1",
        "ftp://user:s3cret-pw@api.example.com",
    ):
        with pytest.raises(InvalidInputError, match="base_url") as info:
            RemoteModel.from_preset("clarifai", base_url=url, **kw)
        assert "s3cret-pw" not in str(info.value)


# -- budget, ledger, cache, checkpoints ---------------------------------------------------------------


def test_budget_is_checked_before_sending_and_cache_hits_are_free():
    rec = Recorder()
    model = make(rec, max_queries=5, price_per_query=0.002)
    with pytest.raises(QueryBudgetExceeded, match="max_queries=5"):
        model.predict_proba(images(6))
    assert rec.requests == []
    x = images(5)
    model.predict_proba(x)
    assert model.ledger.billed == 5 and model.ledger.cost == pytest.approx(0.01)
    model.predict_proba(x[::-1])  # all cached: allowed at the cap, not billed
    assert model.ledger.billed == 5 and model.ledger.cache_hits == 5
    with pytest.raises(QueryBudgetExceeded):
        model.predict_proba(images(1, seed=9))
    assert rec.images_sent == 5


def test_duplicates_in_a_batch_are_sent_once_and_counted_as_hits():
    rec = Recorder()
    model = make(rec)
    x = images(3)
    p = model.predict_proba(np.concatenate([x, x[:2]]))
    assert rec.images_sent == 3 and model.ledger.billed == 3 and model.ledger.cache_hits == 2
    np.testing.assert_array_equal(p[3:], p[:2])


def test_failed_requests_are_not_billed_and_free_their_reservation():
    rec = Recorder(*[err(500)] * 3)
    model = make(rec, [], max_queries=2, retry=RetryPolicy(max_attempts=3, jitter=0))
    with pytest.raises(TransientError):
        model.predict_proba(images(2))
    assert model.ledger.billed == 0 and model.ledger.remaining == 2
    model.predict_proba(images(2))
    assert model.ledger.billed == 2


def test_disk_cache_and_ledger_survive_a_restart(tmp_path):
    rec = Recorder()
    x = images(4)
    first = make(rec, cache_dir=tmp_path, max_queries=6)
    p = first.predict_proba(x)
    del first  # "crash": nothing closed, nothing saved by hand
    again = make(rec, cache_dir=tmp_path, max_queries=6)
    assert again.ledger.billed == 4  # what was paid is remembered
    np.testing.assert_array_equal(again.predict_proba(x), p)
    assert rec.images_sent == 4 and again.ledger.cache_hits == 4
    with pytest.raises(QueryBudgetExceeded):  # the cap spans the restart
        again.predict_proba(images(3, seed=5))
    assert AnswerCache(tmp_path / "answers.sqlite").load_state("ledger")["billed"] == 4


def test_state_dict_round_trip_never_lowers_counts():
    model = make(Recorder())
    model.predict_proba(images(3))
    state = model.state_dict()
    assert state["ledger"]["billed"] == 3 and KEY not in json.dumps(state)
    fresh = make(Recorder())
    fresh.load_state_dict(state)
    assert fresh.ledger.billed == 3
    model.predict_proba(images(2, seed=3))
    model.load_state_dict(state)  # an older checkpoint cannot hide later spending
    assert model.ledger.billed == 5
    other = make(Recorder(), max_concepts=2)
    with pytest.raises(CheckpointError, match="another remote model"):
        other.load_state_dict(state)
    older = {**state, "ledger": {k: v for k, v in state["ledger"].items() if k != "unconfirmed"}}
    fresh.load_state_dict(older)  # a checkpoint from before `unconfirmed` still loads
    assert fresh.ledger.billed == 3 and fresh.ledger.unconfirmed == 0


def test_clones_share_one_budget_and_pickling_is_refused():
    from sklearn.base import BaseEstimator, clone

    class Holder(BaseEstimator):
        def __init__(self, model=None):
            self.model = model

    model = make(Recorder())
    assert copy.deepcopy(model) is model and copy.copy(model) is model
    assert clone(Holder(model)).model is model
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(model)


# -- concurrency and other transports -----------------------------------------------------------------


class Gauge:
    def __init__(self):
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *a):
        with self.lock:
            self.now -= 1


def test_threads_split_the_batch_and_respect_the_concurrency_cap():
    gauge, barrier = Gauge(), threading.Barrier(3, timeout=5)

    def handler(request):
        with gauge:
            try:
                barrier.wait()  # proves 3 requests really are in flight together
            except threading.BrokenBarrierError:
                pass
            return clarifai_ok(request)

    model = make(handler, max_concurrency=3, batch_size=2)
    p = model.predict_proba(images(11))
    assert p.shape == (11, 3) and gauge.peak == 3
    assert model.ledger.requests == 6 and model.ledger.billed == 11


def test_async_path_bounds_concurrency():
    gauge = Gauge()

    async def handler(request):
        with gauge:
            await asyncio.sleep(0.01)
            return clarifai_ok(request)

    async def run():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            model = make(Recorder(), async_client=client, max_concurrency=4, batch_size=1)
            return model, await model.apredict_proba(images(12))

    model, p = asyncio.run(run())
    assert p.shape == (12, 3) and 1 < gauge.peak <= 4 and model.ledger.billed == 12
    np.testing.assert_allclose(p, make(Recorder()).predict_proba(images(12)))


def test_async_path_does_its_cpu_work_off_the_event_loop(monkeypatch):
    """Checking, quantising, hashing and encoding run on threads, so the loop keeps sending other requests on
    time; the flights are claimed on the loop's own thread (a blocking call there must not wait for them)."""
    from bar_sdk.adapters.remote.client import RequestClient
    from bar_sdk.adapters.remote.planning import Planner

    threads = {}
    for cls, name in ((RemoteModel, "_checked"), (Planner, "prepare_part"), (RequestClient, "request_for")):
        real = getattr(cls, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            threads.setdefault(_name, set()).add(threading.get_ident())
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spy)

    async def run():
        async with httpx.AsyncClient(transport=httpx.MockTransport(clarifai_ok)) as client:
            model = make(Recorder(), async_client=client, batch_size=2)
            owners = []
            real_claim = model._planner.claim

            def claim(plan, keys, asynchronous):
                real_claim(plan, keys, asynchronous)
                owners.extend(flight.owner for flight, keys in plan.owned.items() for _ in keys)

            model._planner.claim = claim
            return threading.get_ident(), owners, await model.apredict_proba(images(6))

    loop_thread, owners, p = asyncio.run(run())
    assert p.shape == (6, 3)
    assert threads["_checked"] and loop_thread not in threads["_checked"]
    assert threads["prepare_part"] and loop_thread not in threads["prepare_part"]
    assert threads["request_for"] and loop_thread not in threads["request_for"]
    assert len(owners) == 6 and set(owners) == {loop_thread}


def test_async_retries_use_the_same_policy():
    sleeps = []
    rec = Recorder(err(503), err(429, headers={"Retry-After": "3"}))

    async def run():
        async with httpx.AsyncClient(transport=httpx.MockTransport(rec)) as client:
            model = make(rec, sleeps, async_client=client)
            return model, await model.apredict_proba(images(2))

    model, p = asyncio.run(run())
    assert sleeps == [0.5, 3.0] and model.ledger.billed == 2 and model.ledger.throttled == 1


def test_a_requests_session_with_its_own_auth_plugin():
    import io

    import requests
    from requests.adapters import BaseAdapter

    seen = []

    class Adapter(BaseAdapter):
        def send(self, request, **kwargs):
            seen.append((request, kwargs))
            reply = clarifai_ok(httpx.Request("POST", request.url, content=request.body))
            r = requests.Response()
            r.status_code, r.raw, r.url = 200, io.BytesIO(reply.content), request.url
            return r

        def close(self):
            pass

    session = requests.Session()
    session.mount("https://", Adapter())
    session.hooks["response"] = []
    session.headers["X-Team"] = "radiology"
    model = RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key=KEY,
        model_id="m",
        labels=LABELS,
        input_shape=SHAPE,
        session=session,
    )
    assert model.predict_proba(images(2)).shape == (2, 3)
    request, kwargs = seen[0]
    assert request.headers["X-Team"] == "radiology" and request.headers["Authorization"] == f"Key {KEY}"
    assert kwargs["timeout"] == 30.0


class AsyncSpaces(httpx.AsyncByteStream):
    """An async body of ``n`` KiB of spaces, counting the KiB read."""

    def __init__(self, n):
        self.n, self.read = n, 0

    async def __aiter__(self):
        while self.read < self.n:
            self.read += 1
            yield b" " * 1024


@pytest.mark.parametrize("declared", [False, True])
def test_oversized_answers_are_refused_on_the_async_and_requests_paths_too(declared):
    import io

    import requests
    from requests.adapters import BaseAdapter

    cap, kib = 8 * 1024, 64
    headers = {"Content-Length": str(kib * 1024)} if declared else {}
    stream = AsyncSpaces(kib)
    async_client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, headers=headers, stream=stream))
    )
    model = make(Recorder(), [], async_client=async_client, max_response_bytes=cap)
    with pytest.raises(ResponseFormatError, match="max_response_bytes=8192"):
        asyncio.run(model.apredict_proba(images(2)))
    assert stream.read == (0 if declared else 9) and model.ledger.requests == 1  # not retried
    assert model.ledger.unconfirmed == 2 and model.ledger.billed == 0 and model.ledger.in_flight == 0

    class Raw(io.BytesIO):
        def close(self):
            self.read_when_closed = self.tell()
            super().close()

    raw = Raw(b" " * (kib * 1024))

    class Adapter(BaseAdapter):
        def send(self, request, **kwargs):
            r = requests.Response()
            r.status_code, r.raw, r.url = 200, raw, request.url
            r.headers.update(headers)
            return r

        def close(self):
            pass

    session = requests.Session()
    session.mount("https://", Adapter())
    model = RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key=KEY,
        model_id="m",
        labels=LABELS,
        input_shape=SHAPE,
        session=session,
        max_response_bytes=cap,
    )
    with pytest.raises(ResponseFormatError, match="max_response_bytes"):
        model.predict_proba(images(1))
    assert raw.read_when_closed <= (0 if declared else cap + 64 * 1024) and model.ledger.requests == 1


def test_max_response_bytes_is_checked():
    for bad in (0, 1.5, "16MB", None, True):
        with pytest.raises(InvalidInputError, match="max_response_bytes"):
            make(Recorder(), max_response_bytes=bad)


def test_token_bucket_schedule_and_refund():
    t = [0.0]
    bucket = TokenBucket(rate=4, burst=2, clock=lambda: t[0])
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.25, 0.5]
    t[0] = 10.0
    assert bucket.try_take() == 0.0 and bucket.try_take() == 0.0
    assert bucket.try_take() == pytest.approx(0.25)  # nothing taken
    bucket.refund()
    assert bucket.try_take() == 0.0


def test_client_rate_limit_spaces_requests():
    sleeps = []
    t = [0.0]
    model = make(Recorder(), sleeps, rate_limit=2, burst=1, batch_size=1, max_concurrency=1, clock=lambda: t[0])
    model.predict_proba(images(3))
    assert sleeps == [0.5, 1.0]  # booked slots at 0, 0.5, 1.0 s of a frozen clock


def test_token_bucket_defer_says_how_far_bookings_run_past_the_horizon_and_books_nothing():
    t = [0.0]
    bucket = TokenBucket(rate=4, burst=1, clock=lambda: t[0])  # horizon: four tokens' time, 1 s
    assert bucket.defer() == 0.0
    waits = [bucket.reserve() for _ in range(7)]
    assert waits[-1] == 1.5 and bucket.defer() == pytest.approx(0.5)  # 1.5 s booked, 1 s of horizon
    assert bucket.defer() == pytest.approx(0.5) and bucket.reserve() == 1.75  # defer took nothing
    t[0] = 1.0
    assert bucket.defer() == 0.0  # 0.75 s booked now: inside the horizon


def test_a_retry_books_its_token_at_once_while_fresh_requests_first_let_the_queue_shorten():
    sleeps = []
    t = [0.0]  # frozen: every booking stays ahead, so the queue grows by 0.25 s a request
    rec = Recorder(*([None] * 6), err(429, headers={"Retry-After": "0"}))
    model = make(rec, sleeps, rate_limit=4, burst=1, batch_size=1, max_concurrency=1, clock=lambda: t[0])
    model.predict_proba(images(7))
    # requests 2-6 book 0.25-1.25 s ahead; request 7 (1.25 s queued, past the 1 s horizon) waits 0.25 s
    # before booking; throttled, it waits 0.5 s of backoff, then its retry books at once, without the 0.25 s
    assert sleeps == [0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 1.5, 0.5, 1.5]
    assert len(rec.requests) == 8 and model.ledger.billed == 7


def test_exported_from_adapters():
    import bar_sdk.adapters

    assert bar_sdk.adapters.RemoteModel is RemoteModel and "RemoteModel" in bar_sdk.adapters.__all__
