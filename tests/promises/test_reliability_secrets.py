"""Secrets: an API key leaves no trace in any artefact of a whole run, and goes to one host only.

The key is read from the environment (as a user sets it), used for a BAR fit with a checkpoint and
an answer cache, predictions, a saved program, an audit report, logs at DEBUG from every logger
(the SDK's, httpx's, uvicorn's), progress bars, reprs, and errors (a refused key, a spent budget,
an API that echoes the key back). Then every file written and every string captured is searched
for the key, in the clear, in base64 and in hex.
"""

import base64
import json
import logging
import pickle
import traceback

import httpx
import numpy as np
import pytest
import requests
from _extras import requires
from _figures import record
from sklearn.datasets import load_breast_cancer

from bar_sdk import AuthenticationError, BARClassifier, InvalidInputError, QueryBudgetExceeded, RemoteError
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize
from bar_sdk.adapters.server import DemoModel, Faults, serve
from bar_sdk.audit import audit

KEY = "sk-live-RELIAB-9f3Kq7ZxW2mPvN8d"
SHAPE = (1, 8, 8)
DEMO = DemoModel(SHAPE, n_classes=6, random_state=0)
LABELS = list(DEMO.labels)
FAST = RetryPolicy(initial=0.002, maximum=0.02, jitter=0.002, max_attempts=15, random_state=0)


def forms(key):
    raw = key.encode()
    return {
        "clear": raw,
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw),
        "hex": raw.hex().encode(),
        "header base64": base64.b64encode(b"Key " + raw),
    }


def leaks(blob):
    blob = blob.encode() if isinstance(blob, str) else bytes(blob)
    return [name for name, form in forms(KEY).items() if form in blob]


def failure(fn):
    """Everything an exception shows: str, repr and the whole formatted traceback (chained ones too)."""
    try:
        fn()
    except Exception as exc:
        return exc, [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    raise AssertionError(f"{fn} raised nothing")


def echoing():
    """An API that quotes the credential back: in a 500 body, then in a broken 200 body."""
    calls = []

    def handler(request):
        calls.append(request)
        echo = request.headers.get("authorization", "")
        if len(calls) == 1:
            return httpx.Response(500, json={"status": {"code": 10020, "details": f"bad header {echo}"}})
        return httpx.Response(200, content=f'{{"outputs": [{{"oops": "{echo}"'.encode())

    return handler


@pytest.fixture
def debug_log(tmp_path):
    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield tmp_path / "run.log"
    root.removeHandler(handler)
    root.setLevel(old)
    handler.close()


@requires("server")
def test_an_api_key_leaves_no_trace_in_any_artefact_of_a_whole_run(tmp_path, monkeypatch, capfd, debug_log):
    monkeypatch.setenv("CLARIFAI_PAT", KEY)
    data = load_breast_cancer()
    X, y = data.data[:30], data.target[:30]
    xa = np.random.default_rng(1).random((3, *SHAPE)).astype(np.float32)
    ya = DEMO.predict_proba(quantize(xa)).argmax(1)
    texts = []
    faults = Faults(rate_429=0.2, rate_500=0.1, rate_malformed=0.05, retry_after=0, random_state=1)
    with serve(DEMO, api_keys=[KEY], faults=faults) as server:
        model = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            model_id="demo",
            labels=LABELS,
            input_shape=SHAPE,
            cache_dir=tmp_path / "cache",
            retry=FAST,
        )
        clf = BARClassifier(
            model,
            max_queries=300,
            batch_size=10,
            n_directions=2,
            random_state=0,
            verbose=True,
            checkpoint=tmp_path / "run.bar",
        ).fit(X, y)
        clf.predict(X[:5])
        clf.save(tmp_path / "program.bar")
        report = audit(model, xa, ya, attacks=["square"], eps=[0.1], max_queries=8, out_dir=tmp_path / "audit")
        (tmp_path / "remote_state.json").write_text(json.dumps(model.state_dict()))
        texts += [
            repr(model),
            str(model),
            repr(model.preset),
            repr(model.ledger),
            repr(clf),
            str(clf.get_params()),
            repr(report),
            json.dumps(report.to_dict()),
            repr(model._credentials),
        ]
        _, shown = failure(lambda: pickle.dumps(model))
        texts += shown
        # a spent budget, in the client and through BAR
        tiny = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            model_id="demo",
            labels=LABELS,
            input_shape=SHAPE,
            max_queries=2,
            retry=FAST,
        )
        exc, shown = failure(lambda: tiny.predict_proba(xa))
        assert isinstance(exc, QueryBudgetExceeded)
        texts += shown
        exc, shown = failure(lambda: BARClassifier(tiny, max_queries=300, batch_size=10, n_directions=2).fit(X, y))
        assert isinstance(exc, QueryBudgetExceeded)
        texts += shown
        tiny.close()
        assert server.billed > 0
    # the key refused by another server
    with serve(DEMO, api_keys=["someone-else"]) as other:
        refused = RemoteModel.from_preset(
            "clarifai", base_url=other.base_url, model_id="demo", labels=LABELS, input_shape=SHAPE, retry=FAST
        )
        exc, shown = failure(lambda: refused.predict_proba(xa))
        assert isinstance(exc, AuthenticationError)
        texts += shown
        refused.close()
    # an API that quotes the key back in its error bodies
    echo = RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        model_id="demo",
        labels=LABELS,
        input_shape=SHAPE,
        retry=RetryPolicy(max_attempts=3, max_malformed=1, jitter=0),
        client=httpx.Client(transport=httpx.MockTransport(echoing())),
        sleep=lambda s: None,
    )
    exc, shown = failure(lambda: echo.predict_proba(xa))
    assert isinstance(exc, RemoteError) and "***" in str(exc)
    texts += shown
    echo.close()
    model.close()

    out, err = capfd.readouterr()
    texts += [out, err]
    assert "BAR fit" in err  # the progress bar was there, and was searched
    log = debug_log.read_text()
    assert "retrying" in log and "HTTP Request" in log and "HTTP 200" in log  # INFO and DEBUG lines were written
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"run.bar", "program.bar", "answers.sqlite", "report.json", "report.md", "run.log"} <= names
    found = {str(p.relative_to(tmp_path)): leaks(p.read_bytes()) for p in files}
    found.update({f"captured string {i}": leaks(t) for i, t in enumerate(texts)})
    assert not {where: how for where, how in found.items() if how}, "the API key leaked"
    record("secrets", files=len(files), strings=len(texts), forms=len(forms(KEY)))


# -- the key goes to the configured host only ---------------------------------------------------------

EVIL = "https://evil.example.net/steal"


def redirecting(seen):
    def handler(request):
        seen.append(request)
        return httpx.Response(302, headers={"Location": EVIL})

    return handler


@pytest.mark.parametrize(
    "preset,options,header",
    [
        ("google_vision", {}, "x-goog-api-key"),  # a custom header: httpx would not strip it on a redirect
        ("clarifai", {"model_id": "m"}, "authorization"),
    ],
)
def test_a_redirect_never_carries_the_key_elsewhere_even_with_a_client_that_follows(preset, options, header):
    seen = []
    client = httpx.Client(transport=httpx.MockTransport(redirecting(seen)), follow_redirects=True)
    model = RemoteModel.from_preset(
        preset,
        base_url="https://api.example.com",
        api_key=KEY,
        labels=LABELS,
        input_shape=SHAPE,
        client=client,
        retry=RetryPolicy(jitter=0),
        **options,
    )
    with pytest.raises(RemoteError, match="not followed"):
        model.predict_proba(np.zeros((1, *SHAPE), np.float32))
    assert [r.url.host for r in seen] == ["api.example.com"] and KEY in seen[0].headers[header]
    client.close()


def test_a_redirect_never_carries_the_key_elsewhere_through_an_async_client():
    import asyncio

    seen = []

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(redirecting(seen)), follow_redirects=True) as client:
            model = RemoteModel.from_preset(
                "google_vision",
                base_url="https://api.example.com",
                api_key=KEY,
                labels=LABELS,
                input_shape=SHAPE,
                async_client=client,
                retry=RetryPolicy(jitter=0),
            )
            await model.apredict_proba(np.zeros((1, *SHAPE), np.float32))

    with pytest.raises(RemoteError, match="not followed"):
        asyncio.run(go())
    assert [r.url.host for r in seen] == ["api.example.com"]


def test_a_redirect_never_carries_the_key_elsewhere_through_a_requests_session():
    class Redirecting(requests.adapters.BaseAdapter):
        def __init__(self):
            super().__init__()
            self.seen = []

        def send(self, request, **kwargs):
            self.seen.append(request)
            response = requests.Response()
            response.status_code, response.url, response.request = 302, request.url, request
            response.headers["Location"] = EVIL
            response._content = b""
            return response

        def close(self):
            pass

    adapter = Redirecting()
    session = requests.Session()
    session.mount("https://", adapter)
    model = RemoteModel.from_preset(
        "google_vision",
        base_url="https://api.example.com",
        api_key=KEY,
        labels=LABELS,
        input_shape=SHAPE,
        session=session,
        retry=RetryPolicy(jitter=0),
    )
    with pytest.raises(RemoteError, match="not followed"):
        model.predict_proba(np.zeros((1, *SHAPE), np.float32))
    assert [r.url for r in adapter.seen] == ["https://api.example.com/v1/images:annotate"]


NO_NETWORK = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(500)))


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("http://api.example.com", False),
        ("HTTP://API.EXAMPLE.COM", False),
        ("http://localhost.evil.example", False),  # a name that starts like loopback
        ("http://127.0.0.1.nip.io", False),
        ("http://127.0.0.1@evil.example", False),  # loopback as user info, the host is elsewhere
        ("http://0.0.0.0:8000", False),
        ("http://[::ffff:127.0.0.1]", False),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000/prefix", True),
        ("http://[::1]:8000", True),
        ("https://api.example.com", True),
    ],
)
def test_plain_http_is_refused_unless_the_host_is_loopback(url, allowed):
    def build(**kw):
        return RemoteModel.from_preset(
            "clarifai",
            base_url=url,
            api_key=KEY,
            model_id="m",
            labels=LABELS,
            input_shape=SHAPE,
            client=NO_NETWORK,
            **kw,
        )

    if allowed:
        build().close()
    else:
        with pytest.raises(ValueError, match="unencrypted") as info:
            build()
        assert KEY not in str(info.value)
        if "@" in url:  # user info in the URL is refused even when plain http is allowed
            with pytest.raises(ValueError, match="credentials"):
                build(allow_insecure=True)
        else:
            build(allow_insecure=True).close()


# -- the key in tracebacks with locals, echoed in any encoding, and keys that cannot be sent ----------

# A key with characters every encoding treats differently: '/', '+', '=' (percent, base64 alphabets),
# '~' (quote's safe set), '&', '"', '<' (HTML, JSON), upper and lower case (hex, percent case).
ODD_KEY = 'sk/live+RELIAB=9f3K&q7~Zx"W2m<PvN8d'


def _echo_forms(key):
    import html
    from urllib.parse import quote, quote_plus

    raw = key.encode()
    pct = quote(key, safe="")
    return {
        "clear": key,
        "repr": repr(key),
        "json": json.dumps(key),
        "json slash": json.dumps(key).replace("/", "\\/"),
        "percent": pct,
        "percent lower": "%".join(pct.split("%")[:1] + [p[:2].lower() + p[2:] for p in pct.split("%")[1:]]),
        "percent path": quote(key),
        "percent plus": quote_plus(key),
        "percent twice": quote(pct, safe=""),
        "html": html.escape(key),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "base64 Key header": base64.b64encode(b"Key " + raw).decode(),
        "base64 Basic user:key": base64.b64encode(b"user:" + raw).decode(),
        "unicode escape": key.encode("unicode_escape").decode(),
    }


def _shown(exc, *, with_locals=False):
    tb = traceback.TracebackException.from_exception(exc, capture_locals=with_locals)
    return "\n".join([str(exc), repr(exc), "".join(tb.format())])


@pytest.mark.parametrize("form", sorted(_echo_forms(ODD_KEY)))
def test_an_api_echoing_the_key_in_any_encoding_has_it_redacted(form):
    echoed = _echo_forms(ODD_KEY)[form]

    def handler(request):
        return httpx.Response(401, text=f'{{"error": "invalid key {echoed}", "hint": "check it"}}')

    model = RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key=ODD_KEY,
        model_id="m",
        labels=LABELS,
        input_shape=SHAPE,
        retry=RetryPolicy(jitter=0),
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    with pytest.raises(AuthenticationError) as info:
        model.predict_proba(np.zeros((1, *SHAPE), np.float32))
    shown = _shown(info.value)
    assert "***" in str(info.value) and "check it" in str(info.value)  # redacted, the rest of the body kept
    assert not [name for name, f in _echo_forms(ODD_KEY).items() if len(f) >= 8 and f in shown]


@pytest.mark.parametrize(
    "preset,options",
    [("clarifai", {"model_id": "m"}), ("google_vision", {}), ("azure_vision", {}), ("huggingface", {"model": "m"})],
)
def test_a_traceback_rendered_with_locals_shows_no_key(preset, options):
    # pytest --showlocals, rich and error trackers print the repr of every local of every frame
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(500, text="down") if len(calls) < 3 else httpx.Response(401, text="no")

    model = RemoteModel.from_preset(
        preset,
        base_url="https://api.example.com",
        api_key=KEY,
        labels=LABELS,
        input_shape=SHAPE,
        retry=RetryPolicy(jitter=0, initial=0),
        sleep=lambda s: None,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        **options,
    )
    with pytest.raises(AuthenticationError) as info:
        model.predict_proba(np.zeros((1, *SHAPE), np.float32))
    assert len(calls) == 3 and any(KEY in v for v in calls[0].headers.values())  # the key was sent
    shown = _shown(info.value, with_locals=True)
    assert "signed = " in shown  # the signed request was among the locals shown
    assert not leaks(shown), "the API key leaked into a traceback's locals"
    signed = model.preset.authorize(model._request_for([np.zeros(SHAPE, np.uint8)]), model._credentials)
    assert not leaks(repr(signed)) and not leaks(str(signed)) and not leaks(repr(signed.headers))
    assert any(KEY in v for v in signed.headers.values())  # the value is still there to be sent


@pytest.mark.parametrize("bad", ["sk-cl\u00e9-SECRET-1234", "sk-\u2019SECRET-1234", "\u00a0sk-SECRET-1234x\u200b"])
def test_a_key_that_cannot_go_into_an_http_header_is_refused_at_construction(bad, monkeypatch):
    sent = []

    def build(api_key):
        return RemoteModel.from_preset(
            "clarifai",
            base_url="https://api.example.com",
            api_key=api_key,
            model_id="m",
            labels=LABELS,
            input_shape=SHAPE,
            retry=RetryPolicy(jitter=0),
            client=httpx.Client(transport=httpx.MockTransport(sent.append)),
        )

    with pytest.raises(InvalidInputError, match="api_key") as info:
        build(bad)
    assert "SECRET" not in _shown(info.value) and not isinstance(info.value, UnicodeError)
    monkeypatch.setenv("CLARIFAI_PAT", bad)  # read from the environment: refused alike
    with pytest.raises(InvalidInputError, match="api_key") as info:
        build(None)
    assert "SECRET" not in _shown(info.value)
    assert sent == []


def test_a_header_that_cannot_be_encoded_is_a_clear_error_and_no_attempt_is_counted():
    # defence in depth below the key check: a preset that adds a non-ASCII header value
    from bar_sdk.adapters.remote.presets.clarifai import ClarifaiPreset

    class Accented(ClarifaiPreset):
        def authorize(self, request, credentials):
            return super().authorize(request, credentials).with_headers(**{"X-Note": "caf\u00e9"})

    sent = []
    model = RemoteModel(
        Accented(model_id="m"),
        base_url="https://api.example.com",
        api_key=KEY,
        labels=LABELS,
        input_shape=SHAPE,
        retry=RetryPolicy(jitter=0),
        client=httpx.Client(transport=httpx.MockTransport(sent.append)),
    )
    with pytest.raises(RemoteError, match="could not be sent") as info:
        model.predict_proba(np.zeros((1, *SHAPE), np.float32))
    assert not isinstance(info.value, UnicodeError) and not leaks(_shown(info.value, with_locals=True))
    assert sent == [] and model.ledger.attempts == 0 and model.ledger.requests == 0 and model.ledger.in_flight == 0
