"""Fault injection: BAR and two attacks through the local cloud-like API survive 10% 429, 5% 500,
2% timeouts and 1% malformed answers, and end exactly where a fault-free run with the same seed ends.

Each workload runs twice against :func:`bar_sdk.adapters.server.serve` (real HTTP on loopback): once
clean, once with faults. The client's ledger, the server's own count and an independent count of
timed-out requests (taken on the wire, below the client) must agree image for image.
"""

import json
import threading
import time

import httpx
import numpy as np
import pytest
from _extras import requires
from _figures import record, scale
from sklearn.datasets import load_breast_cancer

from bar_sdk import BARClassifier
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize
from bar_sdk.adapters.server import DemoModel, Faults, serve
from bar_sdk.adapters.server.faults import KINDS
from bar_sdk.attacks import HopSkipJump, SquareAttack

pytestmark = requires("server")  # every run goes through the local server

SHAPE = (1, 8, 8)
DEMO = DemoModel(SHAPE, n_classes=6, random_state=0)
KEY = "reliab-faults-key-7Qx"
TIMEOUT, SLOW = 0.4, 0.8  # an injected slow answer outlasts the client's timeout: a real timeout
# One seed of faults by default; BAR_RELIABILITY_SCALE=n runs every workload under n seeds.
FAULTS = [
    Faults(
        rate_429=0.10,
        rate_500=0.05,
        rate_slow=0.02,
        rate_malformed=0.01,
        slow_seconds=SLOW,
        retry_after=0,
        random_state=11 + i,
    )
    for i in range(scale())
]
RETRY = RetryPolicy(initial=0.002, maximum=0.02, jitter=0.002, max_attempts=15, random_state=0)
IMAGES_PER_REQUEST = 4

_cancer = load_breast_cancer()
XB, YB = _cancer.data[:40], _cancer.target[:40]
XA = np.random.default_rng(5).random((6, *SHAPE)).astype(np.float32)
YA = DEMO.predict_proba(quantize(XA)).argmax(axis=1)


class Wire(httpx.BaseTransport):
    """The real HTTP transport, counting the requests that timed out, the 200 answers without
    readable outputs (malformed), and the images each kind carried."""

    def __init__(self):
        self.inner = httpx.HTTPTransport()
        self.timeouts = self.timed_out_images = self.malformed = self.malformed_images = 0
        self.lock = threading.Lock()

    def handle_request(self, request):
        n = len(json.loads(request.content)["inputs"])
        try:
            response = self.inner.handle_request(request)
            if response.status_code == 200:
                response.read()
                if not _has_outputs(response.content, n):
                    with self.lock:
                        self.malformed += 1
                        self.malformed_images += n
            return response
        except httpx.TimeoutException:
            with self.lock:
                self.timeouts += 1
                self.timed_out_images += n
            raise

    def close(self):
        self.inner.close()


def _has_outputs(body, n):
    try:
        outputs = json.loads(body).get("outputs")
    except ValueError:
        return False
    return isinstance(outputs, list) and len(outputs) == n


def bar(model):
    clf = BARClassifier(model, max_queries=400, batch_size=10, n_directions=2, smoothing=0.1, random_state=0)
    clf.fit(XB, YB)
    return {"theta": clf.theta_, "program": clf.program_, "predictions": clf.predict(XB), "queries": clf.queries_}


def square(model):
    r = SquareAttack(model, eps=0.1, max_queries=40, random_state=0).run(XA, YA)
    return {"x_adv": r.x_adv, "success": r.success, "queries": r.queries}


def hopskipjump(model):
    r = HopSkipJump(model, norm="l2", max_queries=40, init_num_evals=8, random_state=0).run(XA, YA)
    return {"x_adv": r.x_adv, "success": r.success, "queries": r.queries, "distortion": r.distortion}


# name -> (workload, label-only API)
WORKLOADS = {"BARClassifier": (bar, False), "SquareAttack": (square, False), "HopSkipJump": (hopskipjump, True)}


def run(workload, label_only, faults):
    wire = Wire()
    with (
        serve(DEMO, api_keys=[KEY], rate_limit=300, burst=10, label_only=label_only, faults=faults) as server,
        httpx.Client(transport=wire) as client,
    ):
        model = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=KEY,
            model_id="demo",
            labels=list(DEMO.labels),
            input_shape=SHAPE,
            batch_size=IMAGES_PER_REQUEST,
            max_concurrency=3,
            rate_limit=200,
            timeout=TIMEOUT,
            retry=RETRY,
            label_only=label_only,
            client=client,
        )
        out = workload(model)
        ledger = model.ledger
        # Answers the client gave up on are still produced (and billed) when their delay ends.
        expected = ledger.billed + wire.timed_out_images
        deadline = time.monotonic() + SLOW + 5.0
        while server.billed < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        stats = server.stats()
        model.close()
    return out, ledger, stats, wire


@pytest.fixture(scope="module")
def runs():
    """name -> (the fault-free run, [the run under each seed of faults])."""
    return {
        name: (run(fn, label_only, None), [run(fn, label_only, faults) for faults in FAULTS])
        for name, (fn, label_only) in WORKLOADS.items()
    }


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_faults_change_nothing_in_the_result(runs, name):
    (clean, _, _, _), faulty_runs = runs[name]
    for faulty, _, stats, _ in faulty_runs:
        assert sum(stats.injected.values()) > 0
        assert clean.keys() == faulty.keys()
        for key in clean:
            np.testing.assert_array_equal(faulty[key], clean[key], err_msg=f"{name}: {key} differs under faults")


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_no_query_lost_or_billed_twice_and_every_count_agrees(runs, name):
    (_, clean_led, clean_stats, _), faulty_runs = runs[name]
    # Fault-free: the client's bill is the server's, to the image.
    assert clean_led.billed == clean_stats.billed > 0 and clean_led.requests == clean_stats.requests
    for _, led, stats, wire in faulty_runs:
        # Under faults the client paid for exactly the images a fault-free run paid for: nothing
        # lost, nothing paid twice by the client ...
        assert led.billed == clean_led.billed and led.in_flight == 0 and led.cache_hits == clean_led.cache_hits
        # ... and the server billed at most that plus the images of requests the client timed
        # out on (answers produced after the client stopped waiting; see docs/RELIABILITY.md).
        assert led.billed <= stats.billed <= led.billed + wire.timed_out_images
        assert wire.timeouts >= stats.injected["slow"]
        assert led.requests == stats.requests and led.retries == led.throttled + led.failures
        if wire.timeouts == stats.injected["slow"]:
            # Only the injected delays timed out (a loaded machine can slow other answers past the
            # timeout too, turning a 500 or a 429 into a timeout): then every count is exact.
            assert stats.billed == led.billed + wire.timed_out_images
            assert led.throttled == stats.injected["429"] + stats.throttled
            assert led.failures == stats.injected["500"] + stats.injected["malformed"] + wire.timeouts
            assert wire.malformed == stats.injected["malformed"]


def test_every_kind_of_fault_was_injected_and_survived(runs):
    faulty = [r for name in WORKLOADS for r in runs[name][1]]
    injected = {kind: sum(stats.injected[kind] for _, _, stats, _ in faulty) for kind in KINDS}
    assert all(injected[kind] > 0 for kind in KINDS), injected
    record(
        "faults",
        runs=len(faulty),
        requests=sum(stats.requests for _, _, stats, _ in faulty),
        billed=sum(led.billed for _, led, _, _ in faulty),
        timeouts=sum(w.timeouts for *_, w in faulty),
        timed_out_images=sum(w.timed_out_images for *_, w in faulty),
        server_extra=sum(stats.billed - led.billed for _, led, stats, _ in faulty),
        **{f"injected_{kind}": n for kind, n in injected.items()},
    )


def test_the_ledger_bounds_what_the_vendor_may_have_billed(runs):
    for name in WORKLOADS:
        for _, led, stats, wire in runs[name][1]:
            # Unconfirmed: images of requests timed out, and of 200 answers that could not be read
            # (this server bills neither kind of malformed answer; a real vendor may).
            assert wire.malformed <= stats.injected["malformed"]
            assert led.unconfirmed == wire.timed_out_images + wire.malformed_images
            assert led.billed <= stats.billed <= led.billed + led.unconfirmed
