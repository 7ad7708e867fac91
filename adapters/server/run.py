"""Run the local server in a background thread: ``with serve(model) as server: ...``."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from bar_sdk.adapters.server.app import ServerState, ServerStats, create_app
from bar_sdk.adapters.server.faults import Faults

__all__ = ["serve", "LocalServer"]


class LocalServer:
    """Handle on a running local server.

    Attributes
    ----------
    base_url : str
        ``http://127.0.0.1:<port>``: pass it as ``base_url`` of a RemoteModel.
    api_key : str
        The first accepted key.
    admin_key : str
        Key of ``GET /_stats`` (header ``X-Admin-Key``).
    """

    def __init__(self, base_url: str, state: ServerState, api_key: str) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.admin_key = state.admin_key
        self._state = state

    @property
    def billed(self) -> int:
        """Images answered with a well-formed 200 so far (what a vendor would bill)."""
        return self._state.stats().billed

    def stats(self) -> ServerStats:
        return self._state.stats()

    def __repr__(self) -> str:
        return f"LocalServer({self.base_url!r}, billed={self.billed})"


@contextmanager
def serve(
    model: Any,
    *,
    preset: str = "clarifai",
    host: str = "127.0.0.1",
    port: int = 0,
    api_keys: Sequence[str] = ("test-key",),
    admin_key: str | None = None,
    rate_limit: float | None = None,
    burst: int | None = None,
    top_k: int | None = None,
    label_only: bool = False,
    faults: Faults | None = None,
    model_name: str = "model",
    input_datatype: str = "FP32",
    startup_timeout: float = 10.0,
) -> Iterator[LocalServer]:
    """Serve ``model`` over real HTTP (uvicorn) while the block runs.

    ``port=0`` picks a free port; the handle's ``base_url`` has the real one.
    Other parameters are those of :func:`bar_sdk.adapters.server.create_app`. The
    server stops (and its thread ends) when the block exits.

    Examples
    --------
    >>> from bar_sdk.adapters.server import DemoModel, serve
    >>> from bar_sdk.adapters.remote import RemoteModel
    >>> with serve(DemoModel((1, 8, 8), 3)) as server:              # doctest: +SKIP
    ...     model = RemoteModel.from_preset("clarifai", base_url=server.base_url, api_key=server.api_key,
    ...                                     model_id="demo", labels=["class_0", "class_1", "class_2"],
    ...                                     input_shape=(1, 8, 8))
    ...     model.predict_proba(x); assert model.ledger.billed == server.billed
    """
    import uvicorn

    app = create_app(
        model,
        preset=preset,
        api_keys=api_keys,
        admin_key=admin_key,
        rate_limit=rate_limit,
        burst=burst,
        top_k=top_k,
        label_only=label_only,
        faults=faults,
        model_name=model_name,
        input_datatype=input_datatype,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    real_port = sock.getsockname()[1]
    # log_config=None: a library must not reconfigure the caller's logging.
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="bar-local-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the local server did not start on {host}:{real_port} within {startup_timeout:g} s")
        time.sleep(0.01)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    try:
        yield LocalServer(f"http://{shown}:{real_port}", app.state.bar, api_keys[0])
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
        sock.close()
