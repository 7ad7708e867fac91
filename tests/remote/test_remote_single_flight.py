"""Concurrent calls never pay twice for one image: an image in flight is awaited, not sent again.

Real threads and ``asyncio.gather`` against a counting transport (httpx.MockTransport, answers
slowed so the calls overlap for sure), and real threads against the local server on loopback,
whose own count of billed images is the referee.
"""

import asyncio
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest
from test_remote_client import KEY, LABELS, SHAPE, clarifai_ok, decoded, images

from bar_sdk import RemoteError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize
from bar_sdk.adapters.server import DemoModel, Faults, serve
from bar_sdk.ledger import MeteredModel


class SlowWire:
    """Answers after ``delay`` seconds and counts every image that reached it, by content."""

    def __init__(self, delay=0.1, fail=None):
        self.delay, self.fail = delay, fail or (lambda number: None)
        self.lock = threading.Lock()
        self.seen = Counter()
        self.requests = 0

    def _count(self, request):
        with self.lock:
            self.requests += 1
            self.seen.update(img.tobytes() for img in decoded(request))
            return self.requests

    def __call__(self, request):
        number = self._count(request)
        time.sleep(self.delay)
        return self.fail(number) or clarifai_ok(request)

    async def handle_async(self, request):
        number = self._count(request)
        await asyncio.sleep(self.delay)
        return self.fail(number) or clarifai_ok(request)

    @property
    def sent(self):
        return sum(self.seen.values())


def remote(handler, **kw):
    options = dict(
        batch_size=4,
        max_concurrency=4,
        retry=RetryPolicy(max_attempts=2, jitter=0),
        sleep=lambda s: None,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    options.update(kw)
    return RemoteModel.from_preset(
        "clarifai",
        model_id="m",
        base_url="https://api.example.com",
        api_key=KEY,
        labels=LABELS,
        input_shape=SHAPE,
        **options,
    )


def in_threads(fn, args):
    """Run ``fn(arg)`` for each arg on its own thread, all released together; results (or errors) in order."""
    start = threading.Barrier(len(args), timeout=10)
    out = [None] * len(args)

    def run(i, arg):
        start.wait()
        try:
            out[i] = fn(arg)
        except Exception as exc:  # noqa: BLE001 - returned for the test to look at
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_two_threads_asking_for_the_same_four_images_pay_for_four():
    wire = SlowWire()
    model = remote(wire)
    x = images(4)
    p1, p2 = in_threads(model.predict_proba, [x, x])
    np.testing.assert_array_equal(p1, p2)
    assert wire.sent == 4 and set(wire.seen.values()) == {1}
    assert model.ledger.billed == 4 and model.ledger.cache_hits == 4 and model.ledger.in_flight == 0


def test_six_threads_with_overlapping_batches_pay_once_per_distinct_image():
    wire = SlowWire(delay=0.05)
    model = remote(wire, batch_size=3, max_concurrency=6)
    pool = images(40, seed=1)
    rng = np.random.default_rng(0)
    batches = [rng.choice(40, size=20, replace=False) for _ in range(6)]
    batches[0] = np.arange(40)  # every image is asked for at least once
    out = in_threads(lambda ids: model.predict_proba(pool[ids]), batches)
    assert wire.sent == len(wire.seen) == 40 and max(wire.seen.values()) == 1
    alone = remote(SlowWire(delay=0)).predict_proba(pool)
    for ids, p in zip(batches, out, strict=False):
        np.testing.assert_array_equal(p, alone[ids])
    asked = sum(len(b) for b in batches)
    assert model.ledger.billed == 40 and model.ledger.cache_hits == asked - 40


def test_metered_models_on_threads_count_what_they_asked_and_the_bill_counts_each_image_once():
    wire = SlowWire(delay=0.05)
    model = remote(wire)
    x = images(8, seed=2)
    meters = [MeteredModel(model) for _ in range(3)]
    in_threads(lambda m: m.predict_proba(x), meters)
    assert [m.ledger.queries for m in meters] == [8, 8, 8]  # each estimator got (and counts) 8 answers
    assert wire.sent == 8 == model.ledger.billed


def test_asyncio_gather_pays_once_per_distinct_image():
    wire = SlowWire(delay=0.05)
    pool = images(30, seed=3)
    rng = np.random.default_rng(1)
    batches = [np.arange(30)] + [rng.choice(30, size=14, replace=False) for _ in range(4)]

    async def run():
        async with httpx.AsyncClient(transport=httpx.MockTransport(wire.handle_async)) as client:
            model = remote(wire, async_client=client, batch_size=2)
            results = await asyncio.gather(*(model.apredict_proba(pool[ids]) for ids in batches))
            return model, results

    model, results = asyncio.run(run())
    assert wire.sent == len(wire.seen) == 30 and max(wire.seen.values()) == 1
    for ids, p in zip(batches, results, strict=False):
        np.testing.assert_array_equal(p, results[0][ids])
    assert model.ledger.billed == 30 and model.ledger.in_flight == 0


def test_a_thread_and_a_coroutine_share_one_flight():
    wire = SlowWire(delay=0.1)
    x = images(4, seed=4)

    model = remote(wire, async_client=httpx.AsyncClient(transport=httpx.MockTransport(wire.handle_async)))
    out = in_threads(
        lambda side: model.predict_proba(x) if side == "thread" else asyncio.run(model.apredict_proba(x)),
        ["thread", "coroutine"],
    )
    np.testing.assert_array_equal(out[0], out[1])
    assert wire.sent == 4 and model.ledger.billed == 4


def test_a_failed_flight_lets_its_waiter_send_the_images_itself_and_nothing_is_billed_twice():
    # the first request is refused (400, never retried, not billed) after a while; the call that waited
    # for those images sends them itself once the flight failed, and is answered
    wire = SlowWire(delay=0.1, fail=lambda number: httpx.Response(400, json={}) if number == 1 else None)
    model = remote(wire)
    x = images(4, seed=5)
    first = threading.Thread(target=lambda: results.append(_call(model, x)))
    results = []
    first.start()
    while wire.requests == 0:  # the first call's request is in flight
        time.sleep(0.005)
    second = _call(model, x)  # waits for that flight, which fails, then sends itself
    first.join(10)
    assert isinstance(results[0], RemoteError) and results[0].images_sent == 4
    assert isinstance(second, np.ndarray) and second.shape == (4, 3)
    assert wire.requests == 2 and wire.sent == 8 and set(wire.seen.values()) == {2}
    assert model.ledger.billed == 4 and model.ledger.in_flight == 0  # only the answered request billed
    assert model.predict_proba(x) is not None and wire.requests == 2  # now cached


def _call(model, x):
    try:
        return model.predict_proba(x)
    except RemoteError as exc:
        return exc


@pytest.mark.parametrize("n_threads", [2, 6])
def test_threads_against_the_local_server_pay_once_per_image(n_threads):
    shape = (1, 8, 8)
    demo = DemoModel(shape, n_classes=4, random_state=0)
    pool = np.random.default_rng(6).random((24, *shape)).astype(np.float32)
    rng = np.random.default_rng(n_threads)
    batches = [np.arange(24)] + [rng.choice(24, size=12, replace=False) for _ in range(n_threads - 1)]
    with serve(demo, api_keys=["loopback-key"], faults=Faults(rate_slow=1.0, slow_seconds=0.05)) as server:
        with RemoteModel.from_preset(
            "clarifai",
            model_id="demo",
            base_url=server.base_url,
            api_key="loopback-key",
            labels=list(demo.labels),
            input_shape=shape,
            batch_size=4,
            max_concurrency=4,
            retry=RetryPolicy(jitter=0),
        ) as model:
            out = in_threads(lambda ids: model.predict_proba(pool[ids]), batches)
            assert server.billed == 24 == model.ledger.billed
    expected = demo.predict_proba(quantize(pool))
    for ids, p in zip(batches, out, strict=False):
        np.testing.assert_array_equal(p, out[0][ids])  # one answer per image, whoever asked
        # the server computed in float32 on batches of another size: a few ulps apart
        np.testing.assert_allclose(p, expected[ids], rtol=1e-5, atol=1e-6)


def test_a_blocking_call_on_the_loop_thread_of_the_sending_coroutine_does_not_deadlock():
    # Waiting would block the very loop that must finish the request: the blocking call sends itself
    # (the one documented case where an image may be paid twice), and both calls return.
    wire = SlowWire(delay=0.05)
    x = images(4, seed=7)
    model = remote(wire, async_client=httpx.AsyncClient(transport=httpx.MockTransport(wire.handle_async)))

    async def both():
        task = asyncio.ensure_future(model.apredict_proba(x))
        while wire.requests == 0:  # the coroutine's request is in flight
            await asyncio.sleep(0.005)
        blocking = model.predict_proba(x)  # on the loop's own thread
        return blocking, await task

    out = []
    runner = threading.Thread(target=lambda: out.append(asyncio.run(both())), daemon=True)
    runner.start()
    runner.join(20)
    assert not runner.is_alive(), "deadlock: a blocking call waited for its own event loop"
    blocking, awaited = out[0]
    np.testing.assert_array_equal(blocking, awaited)
    assert wire.sent == 8 and model.ledger.in_flight == 0


def test_waiters_on_one_partly_refused_request_get_their_own_image_answer_or_refusal():
    # One flight covers the four images of the first call's request; the API refuses image 2 inside
    # its billed answer. A call waiting for images 0-1 gets their answers; one waiting for image 2
    # gets that refusal; neither sends anything, and the bill is the one request's four images.
    def refuse_third(request):
        answer = clarifai_ok(request)
        body = answer.json()
        body["status"] = {"code": 10010}
        body["outputs"][2] = {"status": {"code": 30300, "description": "bad bytes"}}
        return httpx.Response(200, json=body)

    class RefusingWire(SlowWire):
        def __call__(self, request):
            self._count(request)
            time.sleep(self.delay)
            return refuse_third(request)

    wire = RefusingWire(delay=0.2)
    model = remote(wire)
    x = images(4, seed=6)
    first = []
    sender = threading.Thread(target=lambda: first.append(_call(model, x)))
    sender.start()
    while wire.requests == 0:  # the first call's request is in flight
        time.sleep(0.005)
    waiting = in_threads(lambda ids: _call(model, x[ids]), [[0, 1], [2]])
    sender.join(10)
    assert isinstance(first[0], RemoteError) and "refused image 2" in str(first[0])
    np.testing.assert_array_equal(waiting[0], remote(SlowWire(delay=0)).predict_proba(x[[0, 1]]))
    assert isinstance(waiting[1], RemoteError) and "refused image 2" in str(waiting[1])
    assert wire.requests == 1 and wire.sent == 4
    assert model.ledger.billed == 4 and model.ledger.in_flight == 0
