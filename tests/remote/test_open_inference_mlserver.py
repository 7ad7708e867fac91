"""The open_inference preset against a server we did not write: Seldon MLServer on loopback.

MLServer (a test-only dependency) is started once per session with a custom
runtime (tests/helpers/_mlserver_runtime.py) serving a logistic regression on
scikit-learn's digits; the runtime counts every image it answers, in its own
process, and the client's ledger must equal that count.
"""

import numpy as np
import pytest

pytest.importorskip("mlserver", reason="MLServer is a test dependency: pip install -e '.[test]'")

from _mlserver import mlserver  # noqa: E402
from _mlserver_runtime import LABELS, SHAPE, digits_model  # noqa: E402

from bar_sdk import RemoteError  # noqa: E402
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize  # noqa: E402

LOCAL = digits_model()
FAST = RetryPolicy(initial=0.05, jitter=0.05, maximum=0.5, max_attempts=8, random_state=0)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with mlserver(tmp_path_factory.mktemp("mlserver")) as handle:
        yield handle


def remote(server, name="digits", **kw):
    kw.setdefault("retry", FAST)
    return RemoteModel.from_preset(
        "open_inference", base_url=server.base_url, model_name=name, labels=LABELS, input_shape=SHAPE, **kw
    )


def digits(n, seed=0):
    from sklearn.datasets import load_digits

    X = load_digits().images[:n, None].astype(np.float32) / 16.0
    noise = np.random.default_rng(seed).normal(0, 0.05, X.shape).astype(np.float32)
    return np.clip(X + noise, 0, 1)


@pytest.mark.parametrize("name", ["digits", "digits_nhwc_u8"])
def test_answers_are_the_local_models_on_the_8bit_images_and_billing_agrees(server, name):
    x = digits(70)
    before = server.count(name)
    with remote(server, name, max_concurrency=3, max_batch=16) as model:
        p = model.predict_proba(x)
        again = model.predict_proba(x[:10])  # answered from the cache, not sent
        assert model.preset.layout == ("NCHW" if name == "digits" else "NHWC")  # read from MLServer's metadata
        assert model.preset.datatype == ("FP32" if name == "digits" else "UINT8")
        want = LOCAL.predict_proba(quantize(x).astype(np.float32) / 255)
        np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-6)  # float32 output tensor
        np.testing.assert_array_equal(again, p[:10])
        assert model.ledger.billed == server.count(name) - before == 70
        assert model.ledger.cache_hits == 10 and model.ledger.requests == 5


def test_bar_classifier_through_the_protocol(server):
    from sklearn.datasets import load_breast_cancer

    from bar_sdk import BARClassifier

    data = load_breast_cancer()
    X, y = data.data[:60], data.target[:60]
    before = server.count("digits")
    with remote(server, max_queries=700, max_concurrency=2) as model:
        clf = BARClassifier(model, max_queries=600, batch_size=10, n_directions=2, random_state=0).fit(X, y)
        clf.predict(X[:10])
        led = model.ledger
        assert clf.queries_ <= 600
        assert led.billed + led.cache_hits == clf.ledger_.queries  # every image asked for: sent or cached
        assert led.billed == server.count("digits") - before > 0  # the server saw what we paid for
        assert led.in_flight == 0 and led.unconfirmed == 0


def test_square_attack_through_the_protocol(server):
    from bar_sdk.attacks import SquareAttack

    x = digits(3, seed=3)
    y = LOCAL.predict_proba(x).argmax(axis=1)
    before = server.count("digits")
    with remote(server, max_queries=2000) as model:
        res = SquareAttack(model, norm="linf", eps=0.1, max_queries=120, quantize=True, random_state=0).run(x, y)
        led = model.ledger
        assert res.total_queries == led.billed + led.cache_hits
        assert led.billed == server.count("digits") - before > 0
        assert res.success.any()  # eps=0.1 on these digits breaks at least one


def test_a_model_mlserver_does_not_hold_fails_fast_and_costs_nothing(server):
    with remote(server, "nosuch", max_queries=5) as model:
        with pytest.raises(RemoteError, match="model_name='nosuch'"):
            model.predict_proba(digits(2))
        assert model.ledger.billed == 0 and model.ledger.in_flight == 0 and model.ledger.attempts == 0
