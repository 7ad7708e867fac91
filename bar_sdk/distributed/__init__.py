"""Scale-out on Ray: one shared budget across workers, distributed audits.

Nothing here imports Ray until it is used; every entry point raises an
``ImportError`` naming the extra to install (``pip install 'bar-sdk[ray]'``)
when Ray is missing.

- :class:`SharedQueryLedger`: a :class:`~bar_sdk.ledger.QueryLedger` held by a
  named, detached Ray actor, so every worker's ``MeteredModel`` draws from one
  budget that outlives workers and the driver.
- :func:`require_ray`: import Ray or say how to install it.

The adapters side (a shared remote ledger for ``RemoteModel``, a shared token
bucket, model replicas) lives in :mod:`bar_sdk.adapters.ray`.
"""

from bar_sdk.distributed.actors import ServiceClient, kill_service, require_ray
from bar_sdk.distributed.ledger import SharedQueryLedger

__all__ = ["require_ray", "ServiceClient", "SharedQueryLedger", "kill_service"]
