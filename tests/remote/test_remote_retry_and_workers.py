"""RetryPolicy with tenacity objects, and the worker-pool path of RemoteModel (order, bytes, failures, billing)."""

import asyncio
import base64
import json
import threading

import httpx
import numpy as np
import pytest
import tenacity

from bar_sdk import AuthenticationError, InvalidInputError, TransientError
from bar_sdk.adapters.remote import (
    RemoteModel,
    RetryPolicy,
    decode_image,
    encode_image,
    encoding as encoding_module,
    quantize,
)
from bar_sdk.adapters.remote.cache import image_key
from bar_sdk.adapters.remote.planning import PARALLEL_BYTES

KEY = "sk-live-SECRET-4242"
LABELS = ["a", "b"]


class Server:
    """MockTransport handler: Clarifai answers scoring each image by its mean; ``script`` responses first."""

    def __init__(self, *script):
        self.script = list(script)
        self.bodies = []
        self.images = []
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            step = self.script.pop(0) if self.script else None
            self.bodies.append(request.content)
        if step is not None:
            return step
        imgs = [
            decode_image(base64.b64decode(i["data"]["image"]["base64"])) for i in json.loads(request.content)["inputs"]
        ]
        with self.lock:
            self.images.extend(imgs)
        outputs = [
            {
                "status": {"code": 10000},
                "data": {
                    "concepts": [
                        {"name": "a", "value": float(img.mean()) / 255},
                        {"name": "b", "value": 1 - float(img.mean()) / 255},
                    ]
                },
            }
            for img in imgs
        ]
        return httpx.Response(200, json={"status": {"code": 10000}, "outputs": outputs})


def make(server, shape, sleeps=None, **kw):
    return RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key=KEY,
        model_id="m",
        labels=LABELS,
        input_shape=shape,
        client=httpx.Client(transport=httpx.MockTransport(server)),
        sleep=sleeps.append if sleeps is not None else None,
        **kw,
    )


# -- RetryPolicy: tenacity objects as well as numbers ---------------------------------------------------


def test_a_users_stop_after_attempt_is_honoured():
    server, sleeps = Server(*[httpx.Response(503)] * 10), []
    model = make(server, (1, 4, 4), sleeps, retry=RetryPolicy(stop=tenacity.stop_after_attempt(2), jitter=0))
    with pytest.raises(TransientError, match=r"gave up after 2 attempt.*stop=<tenacity.stop.stop_after_attempt"):
        model.predict_proba(np.zeros((1, 1, 4, 4), np.float32))
    assert len(server.bodies) == 2 and sleeps == [0.5]  # max_attempts=6 by default: the user's stop won
    assert (model.ledger.attempts, model.ledger.billed) == (2, 0)


def test_a_users_wait_sets_the_pauses_and_retry_after_stays_the_floor():
    server, sleeps = Server(httpx.Response(503), httpx.Response(429, headers={"Retry-After": "3"})), []
    model = make(server, (1, 4, 4), sleeps, retry=RetryPolicy(wait=tenacity.wait_fixed(0.25)))
    model.predict_proba(np.zeros((1, 1, 4, 4), np.float32))
    assert sleeps == [0.25, 3.0]


def test_a_users_retry_narrows_but_never_widens():
    only_throttles = tenacity.retry_if_exception(lambda e: "throttled" in str(e))
    server = Server(httpx.Response(503), httpx.Response(200))
    model = make(server, (1, 4, 4), [], retry=RetryPolicy(retry=only_throttles, jitter=0))
    with pytest.raises(TransientError, match="HTTP 503"):  # 503 is retryable, but the user said no
        model.predict_proba(np.zeros((1, 1, 4, 4), np.float32))
    assert len(server.bodies) == 1
    server = Server(httpx.Response(401), httpx.Response(200))
    model = make(server, (1, 4, 4), [], retry=RetryPolicy(retry=tenacity.retry_always, jitter=0))
    with pytest.raises(AuthenticationError):  # never retried, whatever the user's rule
        model.predict_proba(np.zeros((1, 1, 4, 4), np.float32))
    assert len(server.bodies) == 1


def test_numbers_still_work_and_non_tenacity_values_are_refused():
    server, sleeps = Server(*[httpx.Response(500)] * 10), []
    model = make(server, (1, 4, 4), sleeps, retry=RetryPolicy(max_attempts=3, initial=1, exp_base=3, jitter=0))
    with pytest.raises(TransientError, match=r"gave up after 3 attempt.*max_attempts=3"):
        model.predict_proba(np.zeros((1, 1, 4, 4), np.float32))
    assert sleeps == [1, 3] and len(server.bodies) == 3
    for name in ("stop", "wait", "retry"):
        with pytest.raises(InvalidInputError, match=f"{name}=2; expected a tenacity {name} object"):
            RetryPolicy(**{name: 2})


# -- the worker pool: order, bytes, failures, billing --------------------------------------------------

SHAPE = (3, 64, 64)  # 12 kB per image: a batch of 32 is over PARALLEL_BYTES, so the pool is used


def batch(n, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE)).astype(np.float32)


def test_the_pool_keeps_order_and_sends_the_same_bytes_as_the_serial_path():
    x = batch(32)
    assert quantize(x).nbytes >= PARALLEL_BYTES
    serial_server, pool_server = Server(), Server()
    serial = make(serial_server, SHAPE, batch_size=32, workers=1)
    pooled = make(pool_server, SHAPE, batch_size=32, workers=4)
    p_serial, p_pool = serial.predict_proba(x), pooled.predict_proba(x)
    assert pooled._pool is not None and serial._pool is None  # the pool path was really taken
    assert pool_server.bodies == serial_server.bodies  # same request, byte for byte
    np.testing.assert_array_equal(p_pool, p_serial)
    want = quantize(x).reshape(32, -1).mean(axis=1) / 255  # row i answers image i: order kept
    np.testing.assert_allclose(p_pool[:, 0], want, rtol=1e-12)
    keys = [image_key(img, pooled._identity) for img in quantize(x)]
    assert pooled._planner.cache.get_many(keys).keys() == set(keys)
    pooled.close()
    serial.close()


def test_the_pool_path_gives_the_same_answers_asynchronously():
    x = batch(32, seed=1)
    server = Server()
    model = make(
        server, SHAPE, batch_size=8, workers=3, async_client=httpx.AsyncClient(transport=httpx.MockTransport(server))
    )
    p = asyncio.run(model.apredict_proba(x))
    np.testing.assert_allclose(p[:, 0], quantize(x).reshape(32, -1).mean(axis=1) / 255, rtol=1e-12)
    assert model.ledger.billed == 32 == len(server.images)


def test_a_failing_encode_in_a_worker_is_a_clear_error_and_unsent_images_are_not_billed(monkeypatch):
    x = batch(64, seed=2)
    poisoned = quantize(x[40])
    real = encoding_module.encode_image
    seen_threads = set()

    def encode(img, *args, **kwargs):
        seen_threads.add(threading.current_thread().name)
        if np.array_equal(img, poisoned):
            raise MemoryError("encoder ran out of memory")
        return real(img, *args, **kwargs)

    monkeypatch.setattr("bar_sdk.adapters.remote.client.encode_image", encode)
    server = Server()
    model = make(server, SHAPE, batch_size=32, workers=4, max_concurrency=1, max_queries=100)
    with pytest.raises(MemoryError, match="encoder ran out of memory") as info:
        model.predict_proba(x)
    assert any(name.startswith("bar-encode") for name in seen_threads)  # it failed in a worker
    # The first request (images 0-31) went out and was billed; the second never left: not billed, room freed.
    assert len(server.bodies) == 1 and len(server.images) == 32
    led = model.ledger
    assert (led.billed, led.in_flight) == (32, 0)
    assert (info.value.images_sent, info.value.images_billed) == (32, 32)
    assert "the other 32 were not sent" in str(info.value)
    p = model.predict_proba(x[:32])  # paid for: answered from the cache
    assert led.billed == 32 and len(server.bodies) == 1 and p.shape == (32, 2)


def test_png_levels_all_decode_to_the_image_sent():
    img = quantize(batch(1, seed=3))[0]
    for level in (0, 1, 9):
        np.testing.assert_array_equal(decode_image(encode_image(img, png_level=level)), img)
    with pytest.raises(InvalidInputError, match="png_level"):
        make(Server(), SHAPE, png_level=10)


def test_json_body_splices_base64_and_writes_what_json_dumps_writes():
    from bar_sdk.adapters.remote.presets import base

    rng = np.random.default_rng(4)
    blobs = [base.b64(rng.bytes(n)) for n in (0, 1, 2, 3, 5000)]
    obj = {
        "inputs": [{"data": {"image": {"base64": b}}} for b in blobs],
        "other": [1, 2.5, None, True, '\u00e9"\\', (base.b64(b"ab"),)],
    }
    assert base.json_body(obj) == json.dumps(obj, separators=(",", ":")).encode()
    # A user's string that holds the splice mark itself: still exactly json.dumps (the plain way is taken).
    for evil in (
        {"a": base._MARK + "0", "b": base.b64(b"xyz")},
        {"a": '"' + base._MARK + '0"', "b": [base.b64(b"xyz"), base.b64(b"q")]},
    ):
        assert base.json_body(evil) == json.dumps(evil, separators=(",", ":")).encode()
