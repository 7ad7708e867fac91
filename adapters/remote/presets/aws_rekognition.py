"""AWS Rekognition DetectLabels: JSON-1.1 over ``POST {base_url}/``, SigV4-signed.

One image per request as ``Image.Bytes`` (base64); scores
``Labels[].Confidence`` on a 0-100 scale, divided by 100 (not
renormalised: labels are multi-label, parents and aliases repeat scores).
Requests are signed with botocore's ``SigV4Auth`` before every attempt
(signatures expire). Throttling arrives as HTTP 400
``ProvisionedThroughputExceededException`` or ``ThrottlingException``.
"""

from __future__ import annotations

from typing import Any, NoReturn, Sequence

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import (
    Answer,
    Preset,
    b64,
    classify_status,
    dig,
    json_body,
    read_entries,
    throttle,
    transient,
)
from bar_sdk.adapters.remote.secret import redact_all
from bar_sdk.contract import check_float, check_int
from bar_sdk.errors import AuthenticationError, InvalidInputError, RemoteError, ResponseFormatError

__all__ = ["AwsRekognitionPreset", "AwsCredentials"]

_THROTTLE = {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException"}
_AUTH = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
}
_TRANSIENT = {"InternalServerError", "ServiceUnavailableException"}


class AwsCredentials:
    """botocore credentials that print as ``'***'``."""

    __slots__ = ("_creds",)

    def __init__(self, creds: Any) -> None:
        self._creds = creds

    def reveal(self) -> Any:
        return self._creds

    def redact(self, text: str) -> str:
        frozen = self._creds.get_frozen_credentials()
        return redact_all(text, (frozen.secret_key, frozen.token, frozen.access_key))

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("AWS credentials cannot be pickled; checkpoints never hold credentials")


class AwsRekognitionPreset(Preset):
    """AWS Rekognition ``DetectLabels``.

    Parameters
    ----------
    region : str
        AWS region, e.g. ``"us-east-1"``; the default ``base_url`` is
        ``https://rekognition.{region}.amazonaws.com``.
    max_labels : int, optional
        ``MaxLabels``: the highest-confidence N labels.
    min_confidence : float, optional
        ``MinConfidence`` in percent (the service's default is 55); lower it
        to see more labels.

    Notes
    -----
    ``api_key`` is ``(access_key_id, secret_access_key)`` or
    ``(access_key_id, secret_access_key, session_token)``, a botocore
    ``Credentials`` object, or ``None`` for botocore's usual chain
    (environment, ``~/.aws``, instance role). Rekognition needs at least
    80 pixels per side.
    """

    name = "aws_rekognition"

    def __init__(self, region: str, *, max_labels: int | None = None, min_confidence: float | None = None) -> None:
        if not isinstance(region, str) or not region:
            raise InvalidInputError(f"region={region!r}; expected an AWS region such as 'us-east-1'")
        self.region = region
        self.max_labels = check_int(max_labels, "max_labels", low=1, allow_none=True)
        self.min_confidence = check_float(min_confidence, "min_confidence", low=0.0, high=100.0, allow_none=True)

    @property
    def default_base_url(self) -> str:  # type: ignore[override]
        return f"https://rekognition.{self.region}.amazonaws.com"

    def resolve_credentials(self, api_key: Any) -> AwsCredentials:
        from botocore.credentials import Credentials

        if isinstance(api_key, AwsCredentials):
            return api_key
        if isinstance(api_key, (tuple, list)) and len(api_key) in (2, 3) and all(isinstance(v, str) for v in api_key):
            return AwsCredentials(Credentials(*api_key))
        if api_key is None:
            import botocore.session

            creds = botocore.session.get_session().get_credentials()
            if creds is None:
                raise InvalidInputError(
                    "api_key=None and botocore found no AWS credentials (environment, "
                    "~/.aws, role); pass api_key=(access_key_id, secret_access_key)"
                )
            return AwsCredentials(creds)
        if hasattr(api_key, "get_frozen_credentials"):
            return AwsCredentials(api_key)
        raise InvalidInputError(
            "api_key for aws_rekognition must be (access_key_id, secret_access_key[, "
            "session_token]), botocore Credentials or None"
        )

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        body: dict[str, Any] = {"Image": {"Bytes": b64(images[0])}}
        if self.max_labels is not None:
            body["MaxLabels"] = self.max_labels
        if self.min_confidence is not None:
            body["MinConfidence"] = self.min_confidence
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "RekognitionService.DetectLabels"}
        return HttpRequest("POST", f"{base_url}/", headers, json_body(body))

    def authorize(self, request: HttpRequest, credentials: AwsCredentials) -> HttpRequest:  # type: ignore[override]
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        aws = AWSRequest(method=request.method, url=request.url, data=request.content, headers=request.headers)
        SigV4Auth(credentials.reveal(), "rekognition", self.region).add_auth(aws)
        return request.with_headers(**dict(aws.headers))

    def check(self, response: HttpResponse) -> None:
        if response.ok:
            return
        kind = response.headers.get("x-amzn-errortype", "")
        try:
            body = response.json()
            kind = kind or str(body.get("__type", ""))
            message = body.get("message") or body.get("Message") or ""
        except (ResponseFormatError, AttributeError):
            message = response.snippet()
        kind = kind.split("#")[-1].split(":")[0]
        detail = f"{kind}: {message}"
        if kind in _THROTTLE:
            raise throttle(f"aws_rekognition throttled the request (HTTP {response.status_code}, {detail})")
        if kind in _AUTH:
            raise AuthenticationError(
                f"aws_rekognition refused the credentials (HTTP {response.status_code}, "
                f"{detail}); check api_key and region; not retried"
            )
        if kind in _TRANSIENT:
            raise transient(f"aws_rekognition failed (HTTP {response.status_code}, {detail})")
        raise classify_status(response, "aws_rekognition", detail if kind else None)

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        labels = dig(response.json(), "Labels", "aws_rekognition response")
        answer = read_entries(
            labels, "aws_rekognition response Labels", label_keys=("Name",), score_key="Confidence", scale=100.0
        )
        # Newer responses list aliases under a label; an alias carries the label's confidence.
        for label in labels:
            for alias in label["Aliases"] if isinstance(label.get("Aliases"), list) else []:
                name = alias.get("Name") if isinstance(alias, dict) else None
                if isinstance(name, str) and name not in answer:
                    answer[name] = answer[label["Name"]]
        return [answer]
