"""Each vendor preset: the request it builds and the documented answers it reads.

The answers are the bodies in ``tests/fixtures/api``: written for these tests in the formats the vendors
document (field names and nesting as in the vendors' examples; the values are our own), so a clone runs
every test here. See ``tests/fixtures/api/README.md``.
"""

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from _extras import requires

from bar_sdk import AuthenticationError, InvalidInputError, RateLimitError, RemoteError, ResponseFormatError
from bar_sdk.adapters.remote import Preset, RemoteModel, RetryPolicy, available_presets, decode_image, register_preset
from bar_sdk.adapters.remote.http import HttpResponse
from bar_sdk.adapters.remote.presets import ClarifaiPreset, make_preset
from bar_sdk.adapters.remote.presets.base import read_entries

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "api"
SHAPE = (3, 4, 4)
X = np.random.default_rng(0).random((1, *SHAPE)).astype(np.float32)


def fixture(name):
    """A vendor answer body from tests/fixtures/api (part of the repository: missing is an error, not a skip)."""
    return (FIXTURES / name).read_bytes()


class Server:
    """MockTransport handler replaying bodies in order and recording requests."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        status, body, headers = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return httpx.Response(status, content=body, headers=headers or {})


def model_for(name, server, labels, sleeps=None, **kw):
    return RemoteModel.from_preset(
        name,
        base_url=kw.pop("base_url", "https://api.example.com"),
        api_key=kw.pop("api_key", "k3y-SECRET"),
        labels=labels,
        input_shape=SHAPE,
        client=httpx.Client(transport=httpx.MockTransport(server)),
        sleep=(sleeps.append if sleeps is not None else None),
        retry=RetryPolicy(jitter=0),
        **kw,
    )


def test_registry_lists_the_documented_presets():
    assert set(available_presets()) >= {
        "clarifai",
        "google_vision",
        "aws_rekognition",
        "azure_vision",
        "huggingface",
        "torchserve",
        "generic",
    }
    with pytest.raises(InvalidInputError, match="clarifai"):
        make_preset("clarify")
    with pytest.raises(InvalidInputError, match="model_id"):
        make_preset("clarifai", model_id="")
    with pytest.raises(InvalidInputError, match="does not accept"):
        make_preset("clarifai", model_id="m", colour="blue")


# -- Clarifai --------------------------------------------------------------------------------------


def test_clarifai_request_follows_vendors_md():
    server = Server((200, fixture("clarifai_predict_ok.json"), None))
    labels = ["lighthouse", "Coast", "unicorn"]  # "unicorn" is not in the answer: it scores 0
    model = model_for("clarifai", server, labels, model_id="general-image-recognition")
    p = model.predict_proba(X)
    req = server.requests[0]
    assert (
        req.method == "POST" and str(req.url) == "https://api.example.com/v2/models/general-image-recognition/outputs"
    )
    assert req.headers["authorization"] == "Key k3y-SECRET"
    body = json.loads(req.content)
    img = decode_image(base64.b64decode(body["inputs"][0]["data"]["image"]["base64"]))
    assert img.shape == SHAPE
    assert body["model"]["output_info"]["output_config"] == {"max_concepts": 3}  # covers the label list
    np.testing.assert_allclose(p, [[0.98712031, 0.95533127, 0.0]])


def test_clarifai_batches_at_most_128_and_user_app_version_paths():
    def answer(request):
        n = len(json.loads(request.content)["inputs"])
        out = {"status": {"code": "10000"}, "data": {"concepts": [{"name": "a", "value": 0.25}]}}
        return httpx.Response(200, json={"status": {"code": 10000}, "outputs": [out] * n})

    seen = []
    model = model_for(
        "clarifai",
        lambda r: (seen.append(r), answer(r))[1],
        ["a", "b"],
        model_id="m",
        user_id="clarifai",
        app_id="main",
        version_id="v 1",
    )
    x = np.random.default_rng(1).random((130, *SHAPE)).astype(np.float32)
    p = model.predict_proba(x)
    assert sorted(len(json.loads(r.content)["inputs"]) for r in seen) == [2, 128]
    assert seen[0].url.raw_path == b"/v2/users/clarifai/apps/main/models/m/versions/v%201/outputs"
    assert np.all(p[:, 0] == 0.25) and model.ledger.billed == 130 and model.ledger.requests == 2


def test_clarifai_select_concepts_and_too_many_labels():
    preset = ClarifaiPreset("m", select_concepts=True)
    body = json.loads(preset.build_request("https://h", [b"png"], ["a", "b"]).content)
    assert body["model"]["output_info"]["output_config"] == {"select_concepts": [{"name": "a"}, {"name": "b"}]}
    with pytest.warns(UserWarning, match="at most 200"):
        RemoteModel(
            ClarifaiPreset("m"),
            labels=[f"l{i}" for i in range(201)],
            input_shape=SHAPE,
            base_url="https://h",
            api_key="k",
        )


def test_clarifai_error_bodies_from_the_docs():
    sleeps = []
    server = Server(
        (429, fixture("clarifai_error_throttled.json"), None),
        (404, fixture("clarifai_error_model_not_found.json"), None),
    )
    model = model_for("clarifai", server, ["a", "b"], sleeps, model_id="m")
    with pytest.raises(RemoteError, match="Model does not exist") as info:
        model.predict_proba(X)
    assert not isinstance(info.value, RateLimitError)
    assert model.ledger.throttled == 1 and len(sleeps) == 1 and len(server.requests) == 2


def test_clarifai_mixed_status_bills_the_answered_images_and_reports_the_refused_one():
    outputs = [
        {"status": {"code": 10000}, "data": {"concepts": [{"name": "a", "value": 0.5}]}},
        {"status": {"code": 30300, "description": "bad bytes"}},
    ]
    server = Server((200, json.dumps({"status": {"code": 10010}, "outputs": outputs}).encode(), None))
    model = model_for("clarifai", server, ["a", "b"], model_id="m")
    x = np.random.default_rng(2).random((2, *SHAPE)).astype(np.float32)
    with pytest.raises(RemoteError, match="refused image 1"):
        model.predict_proba(x)
    assert model.ledger.billed == 2  # the vendor answered the request: counted, never under-counted
    model.predict_proba(x[:1])  # the good answer was cached
    assert len(server.requests) == 1


# -- Google Cloud Vision --------------------------------------------------------------------------


def test_google_vision_request_and_answer():
    server = Server((200, fixture("gcv_label_detection_ok.json"), None))
    model = model_for("google_vision", server, ["Harbor", "Sunset", "Forest"], base_url="https://vision.example.com")
    p = model.predict_proba(X)
    req = server.requests[0]
    assert str(req.url) == "https://vision.example.com/v1/images:annotate"
    assert req.headers["x-goog-api-key"] == "k3y-SECRET" and "key=" not in str(req.url)
    feature = json.loads(req.content)["requests"][0]["features"][0]
    assert feature == {"type": "LABEL_DETECTION", "maxResults": 3}
    np.testing.assert_allclose(p, [[0.9421807, 0.81350094, 0.0]])


def test_google_vision_batches_16_and_reads_per_image_errors_and_quota():
    def answer(request):
        n = len(json.loads(request.content)["requests"])
        return httpx.Response(200, json={"responses": [{"labelAnnotations": [{"description": "a", "score": 0.5}]}] * n})

    seen = []
    model = model_for("google_vision", lambda r: (seen.append(r), answer(r))[1], ["a", "b"])
    model.predict_proba(np.random.default_rng(3).random((20, *SHAPE)).astype(np.float32))
    assert sorted(len(json.loads(r.content)["requests"]) for r in seen) == [4, 16]

    with pytest.raises(RemoteError, match="Bad image data"):
        model_for("google_vision", Server((200, fixture("gcv_per_image_error.json"), None)), ["a", "b"]).predict_proba(
            X
        )
    sleeps = []
    server = Server((429, fixture("gcv_error_429.json"), None), (200, b'{"responses": [{}]}', None))
    model = model_for("google_vision", server, ["a", "b"], sleeps, auth="bearer", user_project="proj")
    np.testing.assert_array_equal(model.predict_proba(X), [[0, 0]])  # no labelAnnotations: nothing found
    assert model.ledger.throttled == 1 and server.requests[0].headers["authorization"] == "Bearer k3y-SECRET"
    assert server.requests[0].headers["x-goog-user-project"] == "proj"


# -- AWS Rekognition --------------------------------------------------------------------------------


@requires("remote", "botocore")  # SigV4 signing
def test_aws_rekognition_is_signed_and_scores_divided_by_100():
    sleeps = []
    server = Server(
        (400, fixture("rekognition_error_throttling.json"), None),
        (200, fixture("rekognition_detect_labels_ok.json"), None),
    )
    model = model_for(
        "aws_rekognition",
        server,
        ["Wheel", "Helmet", "Horse"],
        sleeps,
        region="eu-west-1",
        api_key=("AKIDEXAMPLE", "wJalrXUtnFEMI-SECRET"),
        base_url=None,
        max_labels=50,
    )
    p = model.predict_proba(X)
    np.testing.assert_allclose(p, [[0.9730341339111328, 0.7111431884765625, 0.0]])
    assert model.ledger.throttled == 1 and len(sleeps) == 1
    first, second = server.requests
    assert str(first.url) == "https://rekognition.eu-west-1.amazonaws.com/"
    assert first.headers["x-amz-target"] == "RekognitionService.DetectLabels"
    assert first.headers["content-type"] == "application/x-amz-json-1.1"
    auth = first.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and "/eu-west-1/rekognition/aws4_request" in auth
    assert "SECRET" not in auth and "x-amz-date" in first.headers
    body = json.loads(first.content)
    assert body["MaxLabels"] == 50 and decode_image(base64.b64decode(body["Image"]["Bytes"])).shape == SHAPE
    assert "SECRET" not in repr(model) and "AKIDEXAMPLE" not in repr(model._credentials)


@requires("remote", "botocore")
def test_aws_rekognition_aliases_and_auth_errors():
    server = Server((200, fixture("rekognition_detect_labels_v3.json"), None))
    model = model_for(
        "aws_rekognition", server, ["Bike", "Vehicle"], region="us-east-1", api_key=("AKID", "S3CR3T"), base_url=None
    )
    # "Bike" is an alias of "Bicycle": it takes Bicycle's score, not its parent Vehicle's
    np.testing.assert_allclose(model.predict_proba(X), [[0.9648213195800781, 0.9790451049804688]])
    denied = json.dumps({"__type": "UnrecognizedClientException", "message": "bad token"}).encode()
    model = model_for(
        "aws_rekognition",
        Server((400, denied, None)),
        ["a", "b"],
        region="us-east-1",
        api_key=("AKID", "S3CR3T"),
        base_url=None,
    )
    with pytest.raises(AuthenticationError, match="UnrecognizedClientException"):
        model.predict_proba(X)


# -- Azure AI Vision --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version,name,expected",
    [
        ("2024-02-01", "azure_v40_analyze_tags_ok.json", [0.9874021410942078, 0.9108445048332214, 0.0]),
        ("v3.2", "azure_v32_analyze_tags_ok.json", [0.9874017834663391, 0.9108440279960632, 0.0]),
    ],
)
def test_azure_vision_request_and_answer(version, name, expected):
    sleeps = []
    server = Server((429, fixture("azure_error_429.json"), {"Retry-After": "1"}), (200, fixture(name), None))
    model = model_for(
        "azure_vision",
        server,
        ["water", "harbor", "cow"],
        sleeps,
        api_version=version,
        base_url="https://res.cognitiveservices.azure.com",
    )
    np.testing.assert_allclose(model.predict_proba(X), [expected])
    assert sleeps == [1.0]
    req = server.requests[1]
    assert req.headers["ocp-apim-subscription-key"] == "k3y-SECRET"
    assert req.headers["content-type"] == "application/octet-stream"
    assert decode_image(req.content).shape == SHAPE
    assert ("features=tags" in str(req.url)) == (version != "v3.2")


def test_azure_bad_request_is_not_retried():
    server = Server((400, fixture("azure_error_400.json"), None))
    with pytest.raises(RemoteError, match="NotSupportedVisualFeature"):
        model_for("azure_vision", server, ["a", "b"]).predict_proba(X)
    assert len(server.requests) == 1


# -- Hugging Face, TorchServe -----------------------------------------------------------------------


def test_huggingface_request_and_answer():
    sleeps = []
    server = Server(
        (503, fixture("hf_error_503_loading.json"), None), (200, fixture("hf_image_classification_ok.json"), None)
    )
    model = model_for(
        "huggingface",
        server,
        ["golden retriever", "cocker spaniel, English cocker spaniel", "lion"],
        sleeps,
        model="google/vit-base-patch16-224",
    )
    np.testing.assert_allclose(model.predict_proba(X), [[0.6125, 0.0088, 0.0]])  # a label with a comma in it
    assert sleeps == [12.5]  # the 503's estimated_time
    req = server.requests[1]
    assert str(req.url) == "https://api.example.com/models/google/vit-base-patch16-224"
    assert req.headers["authorization"] == "Bearer k3y-SECRET" and req.headers["x-use-cache"] == "false"
    assert json.loads(req.content)["parameters"] == {"top_k": 3}


@pytest.mark.parametrize(
    "body,expected",
    [
        (None, [0.6712914705276489, 0.2208345532417297, 0.0]),  # {"label": prob, ...}
        (b'[{"golden_retriever": 0.47}, {"Labrador_retriever": 0.46}]', [0.47, 0.46, 0.0]),
    ],
)  # older: a list
def test_torchserve_both_answer_forms(body, expected, monkeypatch):
    monkeypatch.setenv("BAR_API_KEY", "meant-for-another-vendor")  # an optional key is not guessed from it
    server = Server((200, body or fixture("torchserve_predictions_ok.json"), None))
    model = model_for(
        "torchserve",
        server,
        ["golden retriever", "Labrador retriever", "lion"],
        model="densenet161",
        base_url="http://127.0.0.1:8080",
        api_key=None,
    )
    np.testing.assert_allclose(model.predict_proba(X), [expected])
    req = server.requests[0]
    assert str(req.url) == "http://127.0.0.1:8080/predictions/densenet161" and "authorization" not in req.headers


# -- generic JSON, and a vendor of your own ----------------------------------------------------------


def test_generic_json_batch_template_and_percentages():
    def answer(request):
        body = json.loads(request.content)
        n = len(body["instances"])
        assert body["options"] == {"k": 5} and all(set(i) == {"b64"} for i in body["instances"])
        return httpx.Response(200, json={"predictions": [{"top": [{"class": "benign", "pct": 80.0}]}] * n})

    model = model_for(
        "generic",
        answer,
        ["benign", "malignant"],
        path="/v1/classify",
        request_template={"instances": [{"b64": "{image_b64}"}], "options": {"k": 5}},
        batch_path="instances",
        batch_size=8,
        results_path="predictions",
        labels_path="top",
        label_key="class",
        score_key="pct",
        score_scale=100,
        auth_header="X-Api-Key",
        auth_scheme="",
    )
    x = np.random.default_rng(4).random((10, *SHAPE)).astype(np.float32)
    np.testing.assert_allclose(model.predict_proba(x), np.tile([0.8, 0.0], (10, 1)))
    assert model.ledger.requests == 2
    with pytest.raises(InvalidInputError, match="exactly once"):
        make_preset("generic", request_template={"a": "{image_b64}", "b": "{image_b64}"})
    with pytest.raises(InvalidInputError, match="batch_path"):
        make_preset("generic", batch_size=4)


def test_generic_mapping_and_label_only_answers():
    server = Server((200, b'{"result": {"scores": {"benign": 0.9, "malignant": 0.1}}}', None))
    model = model_for("generic", server, ["benign", "malignant"], labels_path="result.scores")
    np.testing.assert_allclose(model.predict_proba(X), [[0.9, 0.1]])
    assert server.requests[0].headers["authorization"] == "Bearer k3y-SECRET"
    server = Server((200, b'{"labels": ["malignant"]}', None))
    model = model_for("generic", server, ["benign", "malignant"], labels_path="labels", label_only=True)
    np.testing.assert_array_equal(model.predict_proba(X), [[0, 1]])
    assert model.label_only


def test_register_a_vendor_of_your_own():
    class Tiny(Preset):
        name = "tiny"
        key_env = ("TINY_KEY",)
        default_base_url = "https://tiny.example.com"

        def __init__(self, *, project):
            self.project = project

        def build_request(self, base_url, images, labels):
            from bar_sdk.adapters.remote.http import HttpRequest

            return HttpRequest("POST", f"{base_url}/{self.project}", {}, images[0])

        def parse(self, response: HttpResponse, n_images):
            return [read_entries(response.json()["out"], "tiny out", label_keys=("n",), score_key="s")]

    register_preset("tiny_test_vendor", Tiny)
    with pytest.raises(InvalidInputError, match="already registered"):
        register_preset("tiny_test_vendor", Tiny)
    server = Server((200, b'{"out": [{"n": "b", "s": 0.75}]}', None))
    model = model_for("tiny_test_vendor", server, ["a", "b"], project="p1", base_url=None)
    np.testing.assert_allclose(model.predict_proba(X), [[0, 0.75]])
    assert str(server.requests[0].url) == "https://tiny.example.com/p1"


def test_a_preset_cannot_send_the_key_elsewhere():
    from bar_sdk.adapters.remote.http import HttpRequest

    class Leaky(ClarifaiPreset):
        def build_request(self, base_url, images, labels):
            return HttpRequest("POST", "https://elsewhere.example.net/x", {}, b"")

    server = Server((200, b"{}", None))
    model = RemoteModel(
        Leaky("m"),
        labels=["a", "b"],
        input_shape=SHAPE,
        base_url="https://api.example.com",
        api_key="k",
        client=httpx.Client(transport=httpx.MockTransport(server)),
    )
    with pytest.raises(RemoteError, match="sent only to"):
        model.predict_proba(X)
    assert server.requests == [] and model.ledger.in_flight == 0


def test_scores_out_of_range_are_a_format_error():
    server = Server((200, b'[{"label": "a", "score": 1.7}]', None))
    model = RemoteModel.from_preset(
        "huggingface",
        base_url="https://api.example.com",
        api_key="k",
        model="m",
        labels=["a", "b"],
        input_shape=SHAPE,
        retry=RetryPolicy(max_malformed=1),
        client=httpx.Client(transport=httpx.MockTransport(server)),
    )
    with pytest.raises(ResponseFormatError, match=r"expected a score in \[0, 1\]"):
        model.predict_proba(X)


@pytest.mark.parametrize(
    "name, options, flag",
    [
        ("huggingface", {"model": "m"}, "use_cache"),
        ("huggingface", {"model": "m"}, "wait_for_model"),
        ("clarifai", {"model_id": "m"}, "select_concepts"),
        ("generic", {}, "key_required"),
    ],
)
def test_boolean_options_refuse_truthy_strings(name, options, flag):
    for value in ("no", "false", 1, None):
        with pytest.raises(InvalidInputError, match=flag):
            make_preset(name, **options, **{flag: value})
    assert getattr(make_preset(name, **options, **{flag: np.bool_(True)}), flag) is True


# -- the fixtures themselves -------------------------------------------------------------------------

# each fixture here -> the example in ../shared/api_fixtures it was written after (VENDORS.md names the sources)
DOCUMENTED = {
    "azure_error_400.json": "azure_error_400.json",
    "azure_error_429.json": "azure_error_429_other_service.json",
    "azure_v32_analyze_tags_ok.json": "azure_v32_analyze_tags_ok.json",
    "azure_v40_analyze_tags_ok.json": "azure_v40_analyze_tags_ok.json",
    "clarifai_error_model_not_found.json": "clarifai_v2_error_model_not_found.json",
    "clarifai_error_throttled.json": "clarifai_v2_error_throttled.json",
    "clarifai_predict_ok.json": "clarifai_v2_predict_ok.json",
    "gcv_error_429.json": "gcv_error_429_CONSTRUCTED.json",
    "gcv_label_detection_ok.json": "gcv_label_detection_ok.json",
    "gcv_per_image_error.json": "gcv_per_image_error_CONSTRUCTED.json",
    "hf_error_503_loading.json": "hf_error_503_loading.json",
    "hf_image_classification_ok.json": "hf_image_classification_ok.json",
    "rekognition_detect_labels_ok.json": "rekognition_detect_labels_ok.json",
    "rekognition_detect_labels_v3.json": "rekognition_detect_labels_v3_CONSTRUCTED.json",
    "rekognition_error_throttling.json": "rekognition_error_throttling_CONSTRUCTED.json",
    "torchserve_predictions_ok.json": "torchserve_predictions_ok.json",
}


LABEL_KEYED = {"torchserve_predictions_ok.json"}  # {label: score, ...}: its keys are labels, not fields


def json_paths(doc, prefix="$"):
    """``{path: JSON type}`` for every value in ``doc``; the items of a list share the path ``[]``."""
    kind = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }[type(doc)]
    out = {prefix: kind}
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.update(json_paths(value, f"{prefix}.{key}"))
    elif isinstance(doc, list):
        for item in doc:
            out.update(json_paths(item, f"{prefix}[]"))
    return out


def fields(name, raw):
    doc = json.loads(raw)
    # label-keyed answers: every value has one shape, so one of them (the last) stands for all
    return json_paths({"<label>": value for value in doc.values()} if name in LABEL_KEYED else doc)  # noqa: B035


def test_every_fixture_names_its_documented_example_and_parses():
    assert {p.name for p in FIXTURES.glob("*.json")} == set(DOCUMENTED)
    for name in DOCUMENTED:
        json.loads(fixture(name))


def test_fixtures_use_only_the_fields_the_vendors_document():
    shared = Path(__file__).resolve().parents[3] / "shared" / "api_fixtures"
    if not shared.is_dir():
        pytest.skip(
            f"{shared} is absent: the vendors' own examples are not part of the repository; this only checks "
            "that tests/fixtures/api has not drifted from them"
        )
    for ours, theirs in DOCUMENTED.items():
        mine, documented = fields(ours, fixture(ours)), fields(ours, (shared / theirs).read_bytes())
        extra = {path: kind for path, kind in mine.items() if documented.get(path) != kind}
        assert not extra, f"{ours}: fields not in the documented {theirs}: {extra}"
