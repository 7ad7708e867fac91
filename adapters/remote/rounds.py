"""One predict call of RemoteModel, blocking or on an event loop: rounds of sending and waiting.

A round sends the chunks the call has claimed (:class:`~bar_sdk.adapters.remote.client.RequestClient`),
then waits for the images a concurrent call is sending; :meth:`Planner.next_round
<bar_sdk.adapters.remote.planning.Planner.next_round>` takes their answers and claims again those
whose flight failed, until nothing is left to send. Whatever happens, the call's own flights land (a
flight that never landed would keep its waiters waiting), and a failed call raises its first error,
saying what the call had sent (:meth:`Plan.settled <bar_sdk.adapters.remote.planning.Plan.settled>`).
The two paths differ only in how they send (threads or coroutines) and wait.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bar_sdk.adapters.remote.client import RequestClient
from bar_sdk.adapters.remote.http import AsyncSender
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.planning import Plan, Planner

__all__ = ["predict", "apredict"]


def predict(plan: Plan, planner: Planner, client: RequestClient, mapper: LabelMapper) -> np.ndarray:
    """The score rows of ``plan``'s images, blocking (several requests go out on threads)."""
    errors: list[BaseException] = []
    try:
        while True:
            client.send_round(plan, errors)
            if not errors:
                for flight in plan.waits.values():
                    flight.wait()
            if not planner.next_round(plan, errors, asynchronous=False):
                break
    finally:
        planner.land(plan, list(plan.owned))  # a flight this call never landed fails: its waiters send it
    return _settle(plan, planner, mapper, errors)


async def apredict(
    plan: Plan,
    planner: Planner,
    client: RequestClient,
    mapper: LabelMapper,
    *,
    async_client: Any,
    timeout: float,
    max_response_bytes: int,
    max_concurrency: int,
) -> np.ndarray:
    """Like :func:`predict`, on the running event loop: through ``async_client`` (an
    ``httpx.AsyncClient``), or one opened for this call when it is ``None``."""
    errors: list[BaseException] = []
    try:
        if plan.chunks or plan.waits:
            if async_client is not None:
                sender = AsyncSender(async_client, timeout, max_response_bytes)
                await _rounds(plan, planner, client, sender, errors)
            else:
                import httpx

                limits = httpx.Limits(max_connections=max_concurrency)
                async with httpx.AsyncClient(timeout=timeout, limits=limits) as own:
                    await _rounds(plan, planner, client, AsyncSender(own, timeout, max_response_bytes), errors)
    finally:
        planner.land(plan, list(plan.owned))
    return _settle(plan, planner, mapper, errors)


async def _rounds(
    plan: Plan, planner: Planner, client: RequestClient, sender: AsyncSender, errors: list[BaseException]
) -> None:
    while True:
        await client.run_round(plan, sender, errors)
        if not errors:
            for flight in plan.waits.values():
                await flight.wait_async()
        if not planner.next_round(plan, errors, asynchronous=True):
            return


def _settle(plan: Plan, planner: Planner, mapper: LabelMapper, errors: list[BaseException]) -> np.ndarray:
    """The call's first error, with what it sent, raised; or its scores."""
    if errors:
        raise plan.settled(errors[0])
    return planner.finish(plan, mapper)
