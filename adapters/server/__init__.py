"""A local cloud-like classification API: any contract model, served over real HTTP.

For rehearsing before spending money, for tests and for the main job::

    from bar_sdk.adapters.server import serve, Faults
    with serve(model, rate_limit=15, faults=Faults(rate_429=0.1)) as server:
        remote = RemoteModel.from_preset("clarifai", base_url=server.base_url, api_key=server.api_key, ...)
        ...
        assert remote.ledger.billed == server.billed

From a shell: ``python -m bar_sdk.adapters.server --model demo --port 8000``.
"""

from bar_sdk.adapters.server.app import PRESETS, ServerStats, create_app
from bar_sdk.adapters.server.demo import DemoModel
from bar_sdk.adapters.server.faults import Faults
from bar_sdk.adapters.server.run import LocalServer, serve

__all__ = ["serve", "LocalServer", "create_app", "Faults", "ServerStats", "DemoModel", "PRESETS"]
