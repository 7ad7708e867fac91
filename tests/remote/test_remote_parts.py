"""A large call is prepared a part at a time, its first requests sent while the rest is quantised and hashed.

``PART_BYTES`` is shrunk so that a few tiny images make several parts (a part is then one request per
concurrent slot). The answers, bills and budget must be those of the call prepared whole, blocking
or on an event loop, under concurrency, failure, interrupt and cancellation.
"""

import asyncio
import threading
from collections import Counter

import httpx
import numpy as np
import pytest
from test_remote_client import Recorder, decoded, err, images, make

from bar_sdk import AuthenticationError, InvalidInputError, QueryBudgetExceeded
from bar_sdk.adapters.remote import model as remote_model, quantize
from bar_sdk.adapters.remote.planning import Planner


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(remote_model, "PART_BYTES", 1)  # a part = batch_size x max_concurrency images


@pytest.fixture
def before_part(monkeypatch):
    """``before_part(fn)``: ``fn(start, stop)`` runs before each part is prepared, on the thread preparing it."""

    def install(fn):
        real = Planner.prepare_part

        def spy(self, plan, x, start, stop):
            fn(start, stop)
            return real(self, plan, x, start, stop)

        monkeypatch.setattr(Planner, "prepare_part", spy)

    return install


class Signalling(Recorder):
    """A Recorder whose ``answered`` event is set once it has answered a request."""

    def __init__(self, *script):
        super().__init__(*script)
        self.answered = threading.Event()

    def __call__(self, request):
        response = super().__call__(request)
        self.answered.set()
        return response


def slow_async(wire, delay=0.05):
    """An ``httpx.AsyncClient`` whose transport answers through ``wire`` after ``delay`` seconds."""

    async def handler(request):
        await asyncio.sleep(delay)
        return wire(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def counted(wire):
    return Counter(img.tobytes() for request in wire.requests for img in decoded(request))


def cancelled_midway(model, x, after):
    """Run ``model.apredict_proba(x)`` and cancel it ``after`` seconds in."""

    async def run():
        task = asyncio.ensure_future(model.apredict_proba(x))
        await asyncio.sleep(after)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_parts_answer_and_bill_as_the_whole_call_does(small_parts, before_part):
    pool = images(30, seed=3)
    rng = np.random.default_rng(0)
    rows = np.concatenate([np.arange(30), rng.integers(0, 30, 20)])  # every image, then 20 repeats
    rng.shuffle(rows)
    x = pool[rows]
    whole = make(Recorder(), batch_size=2, max_concurrency=2).predict_proba(x)  # 50 rows > 2 x 2: in parts
    wire = Recorder()
    model = make(wire, batch_size=2, max_concurrency=2)
    model.predict_proba(pool[:5])  # five of them already paid for
    parts = []
    before_part(lambda start, stop: parts.append((start, stop)))
    p = model.predict_proba(x)
    assert parts == [(start, min(50, start + 4)) for start in range(0, 50, 4)]
    np.testing.assert_array_equal(p, whole)
    seen = counted(wire)
    assert len(seen) == 30 and max(seen.values()) == 1  # each distinct image sent once, the cached ones before
    assert model.ledger.billed == 30 and model.ledger.cache_hits == 50 - 25 and model.ledger.in_flight == 0


def test_the_first_requests_leave_while_later_parts_are_being_prepared(small_parts, before_part):
    wire = Signalling()
    model = make(wire, batch_size=2, max_concurrency=2)
    waited = []
    # prepared whole, every part would be hashed before any request left: each of these waits would time out
    before_part(lambda start, stop: start and waited.append(wire.answered.wait(10)))
    model.predict_proba(images(12))
    assert waited == [True, True] and model.ledger.billed == 12


def test_a_call_whose_rows_overflow_the_budget_is_prepared_whole_and_fits_or_is_refused_whole(small_parts):
    pool = images(6, seed=1)
    x = pool[np.arange(24) % 6]  # 24 rows, 6 distinct images
    wire = Recorder()
    model = make(wire, batch_size=2, max_concurrency=2, max_queries=10)
    p = model.predict_proba(x)  # room for 10: the rows do not fit, the 6 new images do
    np.testing.assert_array_equal(p, np.tile(p[:6], (4, 1)))
    assert model.ledger.billed == 6 and model.ledger.in_flight == 0
    more = images(24, seed=2)  # 24 new images, room for 4: nothing sent
    with pytest.raises(QueryBudgetExceeded, match="nothing was sent"):
        model.predict_proba(more)
    assert model.ledger.billed == 6 and len(wire.requests) == 3 and model.ledger.in_flight == 0


def test_a_failure_stops_the_parts_and_gives_back_the_room_of_what_was_not_sent(small_parts):
    wire = Recorder(*([None] * 4), err(401))  # the fifth request is refused: AuthenticationError, not retried
    model = make(wire, batch_size=2, max_concurrency=2, max_queries=100)
    with pytest.raises(AuthenticationError) as info:
        model.predict_proba(images(40))
    # Every request but the refused one was answered; the requests not started when it failed were not sent.
    assert 5 <= len(wire.requests) < 20 and model.ledger.billed == 2 * (len(wire.requests) - 1)
    assert info.value.images_billed == model.ledger.billed
    assert model.ledger.in_flight == 0 and model.ledger.remaining == 100 - model.ledger.billed


def test_threads_calling_in_parts_pay_once_per_distinct_image(small_parts):
    wire = Recorder()
    model = make(wire, batch_size=2, max_concurrency=4)
    pool = images(40, seed=4)
    batches = [pool, pool[::-1], pool[10:30]]
    start = threading.Barrier(len(batches), timeout=10)
    out = [None] * len(batches)

    def run(i):
        start.wait()
        out[i] = model.predict_proba(batches[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    seen = counted(wire)
    assert len(seen) == 40 and max(seen.values()) == 1
    np.testing.assert_array_equal(out[1], out[0][::-1])
    np.testing.assert_array_equal(out[2], out[0][10:30])
    assert model.ledger.billed == 40 and model.ledger.cache_hits == 100 - 40 and model.ledger.in_flight == 0


def test_an_interrupt_between_parts_keeps_what_was_paid_and_holds_nothing(small_parts, monkeypatch):
    wire = Recorder()
    model = make(wire, batch_size=2, max_concurrency=2, max_queries=100)
    real = Planner.prepare_part

    def interrupted(self, plan, x, start, stop):
        if start >= 8:
            raise KeyboardInterrupt
        return real(self, plan, x, start, stop)

    with monkeypatch.context() as patch:
        patch.setattr(Planner, "prepare_part", interrupted)
        with pytest.raises(KeyboardInterrupt):
            model.predict_proba(images(20))
    assert model.ledger.billed == 2 * len(wire.requests) <= 8  # the first two parts' requests, or fewer
    assert model.ledger.in_flight == 0 and not model._planner.flights
    p = model.predict_proba(images(20))  # the same images again: the answered ones come from the cache
    assert model.ledger.billed == 20 and len(counted(wire)) == 20 and max(counted(wire).values()) == 1
    assert p.shape == (20, 3)


def test_quantize_into_a_given_array_writes_the_same_bytes_and_refuses_a_wrong_one():
    x = images(5)
    out = np.empty((8, *x.shape[1:]), np.uint8)
    view = out[2:7]
    assert quantize(x, out=view) is view
    np.testing.assert_array_equal(out[2:7], quantize(x))
    levels = quantize(x)
    np.testing.assert_array_equal(quantize(levels, out=np.empty_like(levels)), levels)
    for bad in (
        np.empty(x.shape, np.float32),
        np.empty((4, *x.shape[1:]), np.uint8),
        np.empty((5, 1, 4, 8), np.uint8)[..., ::2],
    ):
        with pytest.raises(InvalidInputError, match="out has dtype"):
            quantize(x, out=bad)


# -- the same on an event loop ----------------------------------------------------------------------


def amake(handler, **kw):
    return make(handler, async_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)), **kw)


def test_async_parts_answer_as_the_whole_call_and_leave_before_the_last_part_is_prepared(small_parts, before_part):
    pool = images(16, seed=5)
    x = pool[np.arange(24) % 16]  # 24 rows, 16 distinct
    whole = make(Recorder(), batch_size=2, max_concurrency=2).predict_proba(x)
    wire = Signalling()
    model = amake(wire, batch_size=2, max_concurrency=2)
    waited = []
    before_part(lambda start, stop: start and waited.append(wire.answered.wait(10)))  # on a worker thread
    p = asyncio.run(model.apredict_proba(x))
    np.testing.assert_array_equal(p, whole)
    assert waited == [True] * 5
    seen = counted(wire)
    assert len(seen) == 16 and max(seen.values()) == 1
    assert model.ledger.billed == 16 and model.ledger.cache_hits == 8 and model.ledger.in_flight == 0


def test_async_gather_of_calls_in_parts_pays_once_per_distinct_image(small_parts):
    wire = Recorder()
    model = amake(wire, batch_size=2, max_concurrency=3)
    pool = images(30, seed=6)

    async def run():
        return await asyncio.gather(*(model.apredict_proba(b) for b in (pool, pool[::-1], pool[5:25])))

    out = asyncio.run(run())
    seen = counted(wire)
    assert len(seen) == 30 and max(seen.values()) == 1
    np.testing.assert_array_equal(out[1], out[0][::-1])
    np.testing.assert_array_equal(out[2], out[0][5:25])
    assert model.ledger.billed == 30 and model.ledger.in_flight == 0


def test_a_cancelled_async_call_in_parts_holds_nothing_and_keeps_what_was_paid(small_parts):
    wire = Recorder()
    model = make(wire, batch_size=2, max_concurrency=2, max_queries=100, async_client=slow_async(wire))
    cancelled_midway(model, images(40), after=0.12)  # a few requests answered, others in flight or waiting
    assert 0 < model.ledger.billed < 40 and model.ledger.billed <= 2 * len(wire.requests)
    assert model.ledger.in_flight == 0 and not model._planner.flights
    assert model.ledger.remaining == 100 - model.ledger.billed - model.ledger.unconfirmed
    p = model.predict_proba(images(40))  # the rest, paid once; the answered ones from the cache
    assert p.shape == (40, 3) and model.ledger.billed == 40 and max(counted(wire).values()) == 1


def test_a_cancelled_async_call_gives_back_the_room_of_requests_still_waiting_for_a_slot():
    wire = Recorder()
    model = make(wire, batch_size=2, max_concurrency=1, max_queries=50, async_client=slow_async(wire))  # whole
    cancelled_midway(model, images(10), after=0.08)  # the first request answered, the second out, three waiting
    assert model.ledger.in_flight == 0 and not model._planner.flights
    assert model.ledger.remaining == 50 - model.ledger.billed - model.ledger.unconfirmed
