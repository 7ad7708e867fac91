"""Ray scale-out on the adapters side (needs the ``ray`` extra: ``pip install 'bar-sdk[ray]'``).

- :class:`RayModel`: a model copied onto n Ray actors; batches split over them, answered in order.
- :class:`SharedRemoteLedger`: one ``RemoteModel`` budget for every worker (``RemoteModel(..., ledger=...)``).
- :class:`SharedTokenBucket`: one rate limit for every worker (``RemoteModel(..., rate_limiter=...)``).
- :class:`PerProcessModel`: ships a function that builds the model (a ``RemoteModel`` cannot be pickled)
  and builds it once in each worker.

All three are named or held Ray actors; the budget and the bucket are
detached, so they outlive the driver and a later job attaches by name.
"""

from bar_sdk.distributed.actors import require_ray

require_ray("bar_sdk.adapters.ray")

from bar_sdk.adapters.ray.budget import SharedRemoteLedger  # noqa: E402
from bar_sdk.adapters.ray.model import RayModel  # noqa: E402
from bar_sdk.adapters.ray.per_process import PerProcessModel  # noqa: E402
from bar_sdk.adapters.ray.ratelimit import SharedTokenBucket  # noqa: E402

__all__ = ["RayModel", "SharedRemoteLedger", "SharedTokenBucket", "PerProcessModel"]
