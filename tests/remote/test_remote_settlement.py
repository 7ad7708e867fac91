"""A call that fails part-way is counted part by part: the estimator's ledger equals what reached the wire.

A RemoteModel call may send several requests; when one fails for good (or the cap refuses its
retry), the requests before it were billed and the ones after it never leave. ``MeteredModel`` (and
so ``BARClassifier.queries_``) must count exactly the images that reached the API, no more, no less,
and the error must say so truthfully. The wire is counted below the client (httpx.MockTransport).
"""

import asyncio
import threading

import httpx
import pytest
from sklearn.datasets import load_breast_cancer
from test_remote_client import KEY, LABELS, SHAPE, clarifai_ok, decoded, images

from bar_sdk import BARClassifier, QueryBudgetExceeded, RemoteError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.ledger import MeteredModel, QueryLedger


class Wire:
    """Counts what reaches the API: every request's images, and which answers a vendor bills (any 200)."""

    def __init__(self, fail=None):
        self.fail = fail or (lambda number, request: None)  # number -> a response replacing the success
        self.lock = threading.Lock()
        self.requests = []  # (number of images, status)
        self.distinct = set()  # image bytes that reached the API
        self.arrived = 0  # requests numbered so far (in order of arrival, even while others are answered)

    def __call__(self, request):
        imgs = decoded(request)
        with self.lock:
            # numbered on arrival: counting the answered requests instead gave two concurrent requests the same
            # number, so with max_concurrency=3 the refused 2nd request was sometimes never refused (1 run in 40)
            self.arrived += 1
            number = self.arrived
            self.distinct.update(img.tobytes() for img in imgs)
        response = self.fail(number, request) or clarifai_ok(request)
        with self.lock:
            self.requests.append((len(imgs), response.status_code))
        return response

    @property
    def sent(self):
        return sum(n for n, _ in self.requests)

    @property
    def vendor_billed(self):
        """What a vendor that bills every 200 (readable or not) charged."""
        return sum(n for n, status in self.requests if status == 200)


def remote(wire, **kw):
    options = dict(
        max_concurrency=1,
        batch_size=4,
        retry=RetryPolicy(max_attempts=3, jitter=0),
        sleep=lambda s: None,
        input_shape=SHAPE,
        client=httpx.Client(transport=httpx.MockTransport(wire)),
    )
    options.update(kw)
    return RemoteModel.from_preset(
        "clarifai", model_id="m", base_url="https://api.example.com", api_key=KEY, labels=LABELS, **options
    )


def unreadable_from(k):
    """A 200 whose body cannot be read (the vendor served, and may bill, it) from request ``k`` on."""
    return lambda number, request: httpx.Response(200, content=b'{"outputs": [') if number >= k else None


def test_a_retry_refused_by_the_cap_mid_call_keeps_the_billed_images_counted():
    # 12 images in 3 requests of 4; the 2nd is answered 200 unreadably (maybe billed: 4 + 4 + 4 in flight
    # would pass max_queries=12), so its retry is refused and the 3rd request never leaves.
    wire = Wire(unreadable_from(2))
    model = remote(wire, max_queries=12)
    metered = MeteredModel(model)
    with pytest.raises(QueryBudgetExceeded) as info:
        metered.predict_proba(images(12))
    assert wire.requests == [(4, 200), (4, 200)]  # 8 images reached the API, all billable
    assert metered.ledger.queries == wire.sent == len(wire.distinct) == 8
    assert metered.ledger.failed == 4 and metered.ledger.calls == 1
    assert (model.ledger.billed, model.ledger.unconfirmed, model.ledger.in_flight) == (4, 4, 0)
    exc = info.value
    assert (exc.images_sent, exc.images_billed) == (8, 4)
    assert "nothing was sent" not in str(exc)
    assert "sent 8 of its 12" in str(exc) and "4 billed" in str(exc) and "other 4 were not sent" in str(exc)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_after_a_request_fails_for_good_only_what_left_is_counted(concurrency):
    # the 2nd request is refused (400, not retried): the requests after it are skipped, and not counted
    wire = Wire(lambda number, request: httpx.Response(400, json={"status": {"code": 10020}}) if number == 2 else None)
    model = remote(wire, max_concurrency=concurrency)
    metered = MeteredModel(model, QueryLedger(max_queries=100))
    with pytest.raises(RemoteError) as info:
        metered.predict_proba(images(20))
    assert metered.ledger.queries == wire.sent == len(wire.distinct) == info.value.images_sent
    assert metered.ledger.failed == 4 == wire.sent - model.ledger.billed
    assert wire.sent < 20 or concurrency > 1  # with one request at a time the 3rd to 5th were skipped
    assert metered.ledger.remaining == 100 - wire.sent and model.ledger.in_flight == 0


def test_cached_and_answered_parts_are_counted_and_a_failure_later_counts_its_own_wire():
    wire = Wire()
    model = remote(wire, batch_size=2)
    metered = MeteredModel(model, batch_size=4)  # parts of 4, each in requests of 2
    x = images(12)
    metered.predict_proba(x[:4])  # paid: these four come from the cache below
    wire.fail = lambda number, request: httpx.Response(403, json={}) if number == 4 else None
    with pytest.raises(RemoteError):
        metered.predict_proba(x)  # part 1: cache hits, answered; part 2: requests 3 (ok) and 4 (refused)
    # 4 (first call) + 4 (part 1, answered from the cache) + 4 (part 2: 2 billed, 2 refused); part 3 never sent
    assert metered.ledger.queries == 12 and metered.ledger.failed == 2
    assert wire.sent == 8 and model.ledger.billed == 6 and model.ledger.cache_hits == 4


def test_the_async_path_reports_what_it_sent():
    async def run():
        wire = Wire(unreadable_from(2))
        async with httpx.AsyncClient(transport=httpx.MockTransport(wire)) as client:
            model = remote(wire, max_queries=12, async_client=client)
            with pytest.raises(QueryBudgetExceeded) as info:
                await model.apredict_proba(images(12))
        return wire, info.value

    wire, exc = asyncio.run(run())
    assert (exc.images_sent, exc.images_billed) == (wire.sent, 4) == (8, 4)


def test_a_refusal_before_anything_left_still_gives_everything_back():
    wire = Wire()
    metered = MeteredModel(remote(wire, max_queries=3))
    with pytest.raises(QueryBudgetExceeded, match="nothing was sent"):
        metered.predict_proba(images(4))
    assert wire.sent == 0 and metered.ledger.queries == 0 and metered.ledger.calls == 0


@pytest.mark.parametrize("bad_from,cap", [(5, 40), (7, 64)])
def test_bar_queries_equal_the_wire_when_the_cap_refuses_a_retry_mid_fit(bad_from, cap):
    # As observed end to end: the API turns unreadable mid-fit (200s a vendor bills), the cap refuses
    # the retry inside a call that had already been billed for part of its images.
    data = load_breast_cancer()
    X, y = data.data[:24], data.target[:24]
    wire = Wire(unreadable_from(bad_from))
    model = remote(wire, max_queries=cap, batch_size=8, input_shape=(1, 8, 8))
    clf = BARClassifier(model, max_queries=500, batch_size=8, n_directions=2, random_state=0)
    with pytest.raises(QueryBudgetExceeded, match="may have been billed"):
        clf.fit(X, y)
    assert clf.stop_reason_ == "the model's own query budget ran out"
    # a call that was answered counts its images (cache hits included); the failed one what reached the API
    assert clf.queries_ == len(wire.distinct) + model.ledger.cache_hits
    assert len(wire.distinct) == wire.vendor_billed == model.ledger.billed + model.ledger.unconfirmed


class Raising:
    """A model whose every call raises ``exc`` (with whatever it says it sent)."""

    n_classes, input_shape = 3, SHAPE

    def __init__(self, exc):
        self.exc = exc

    def predict_proba(self, x):
        raise self.exc


def _said(exc, **attrs):
    for k, v in attrs.items():
        setattr(exc, k, v)
    return exc


@pytest.mark.parametrize(
    "exc,queries,failed,calls",
    [
        (_said(RemoteError("x"), images_sent=3, images_billed=1), 3, 2, 1),  # what it says, exactly
        (_said(RemoteError("x"), images_sent=0, images_billed=0), 0, 0, 0),  # nothing left: given back whole
        (_said(QueryBudgetExceeded(5, 0, 9), images_sent=2, images_billed=2), 2, 0, 1),
        (QueryBudgetExceeded(5, 0, 9), 0, 0, 0),  # says nothing: sent nothing
        (RuntimeError("boom"), 5, 5, 1),  # cannot tell: all may have left
        (_said(RemoteError("x"), images_sent=9), 5, 5, 1),  # impossible claims are ignored
        (_said(RemoteError("x"), images_sent=True), 5, 5, 1),
        (_said(RemoteError("x"), images_sent=4, images_billed=7), 4, 4, 1),  # a bad billed count: none billed
    ],
)
def test_settle_counts_what_the_model_says_it_sent_and_nothing_it_could_not(exc, queries, failed, calls):
    metered = MeteredModel(Raising(exc), QueryLedger(max_queries=10))
    with pytest.raises(type(exc)):
        metered.predict_proba(images(5))
    led = metered.ledger
    assert (led.queries, led.failed, led.calls) == (queries, failed, calls)
    assert led.by_purpose == ({"query": queries} if queries else {})
