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

import asyncio
from concurrent.futures import wait
from typing import Any

import numpy as np

from bar_sdk.adapters.remote.client import RequestClient
from bar_sdk.adapters.remote.http import AsyncSender
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.planning import Plan, Planner

__all__ = ["predict", "apredict"]


def predict(
    x: np.ndarray, planner: Planner, client: RequestClient, mapper: LabelMapper, *, part_rows: int
) -> np.ndarray:
    """The score rows of the checked images ``x``, blocking (several requests go out on threads).

    A call of more than ``part_rows`` images whose every row fits in the budget is prepared a part
    at a time, each part's requests leaving while the next is quantised and hashed (see
    :func:`_send_in_parts`); any other call is prepared whole first, so that one over the budget is
    refused whole, before anything is sent.
    """
    errors: list[BaseException] = []
    plan = planner.start(x)
    try:
        if len(x) > part_rows and planner.hold(len(x)):
            _send_in_parts(x, plan, planner, client, errors, part_rows)
        else:
            planner.prepare_part(plan, x, 0, len(x))
            planner.claim(plan, list(plan.first), asynchronous=False)  # refused whole: raised as it is
            client.send_round(plan, errors)
        while True:
            if not errors:
                for flight in plan.waits.values():
                    flight.wait()
            if not planner.next_round(plan, errors, asynchronous=False):
                break
            client.send_round(plan, errors)
    finally:
        planner.land(plan, list(plan.owned))  # a flight this call never landed fails: its waiters send it
    return _settle(plan, planner, mapper, errors)


def _send_in_parts(
    x: np.ndarray, plan: Plan, planner: Planner, client: RequestClient, errors: list[BaseException], part_rows: int
) -> None:
    """Prepare and claim ``x`` a part at a time, each part's requests sent while the next is prepared.

    The ledger already holds room for every row of ``x`` (:meth:`Planner.hold`): no part can be
    refused, so nothing sent is wasted on a call the budget refuses later. Each part gives back the
    room of its rows that were cached, repeated or in flight elsewhere; what was not prepared (an
    error stopped the call) is given back at the end. Returns when every request sent has settled.
    """
    held, pending = len(x), []
    try:
        for start in range(0, len(x), part_rows):
            if errors:  # a request failed for good: prepare and send nothing more
                break
            stop = min(len(x), start + part_rows)
            mine = planner.claim(plan, planner.prepare_part(plan, x, start, stop), asynchronous=False, reserved=True)
            planner.ledger.release(stop - start - mine)
            held -= stop - start
            pending += client.submit_round(plan, errors)
    except BaseException:  # interrupted: what has not started is not sent
        for chunk, future in pending:
            if future.cancel():
                client.give_up(chunk, plan)
        raise
    finally:
        planner.ledger.release(held)
        wait([future for _, future in pending])  # before the caller lands any flight: none is still out


async def apredict(
    x: np.ndarray,
    planner: Planner,
    client: RequestClient,
    mapper: LabelMapper,
    *,
    async_client: Any,
    timeout: float,
    max_response_bytes: int,
    max_concurrency: int,
    part_rows: int,
) -> np.ndarray:
    """Like :func:`predict`, on the running event loop: through ``async_client`` (an
    ``httpx.AsyncClient``), or one opened for this call when it is ``None``. The CPU work
    (quantising, hashing) runs on threads, so the loop keeps sending meanwhile."""
    errors: list[BaseException] = []
    plan = planner.start(x)
    try:
        if async_client is not None:
            await _arun(
                x, plan, planner, client, AsyncSender(async_client, timeout, max_response_bytes), errors, part_rows
            )
        else:
            import httpx

            limits = httpx.Limits(max_connections=max_concurrency)
            async with httpx.AsyncClient(timeout=timeout, limits=limits) as own:
                sender = AsyncSender(own, timeout, max_response_bytes)
                await _arun(x, plan, planner, client, sender, errors, part_rows)
    finally:
        planner.land(plan, list(plan.owned))
    return _settle(plan, planner, mapper, errors)


async def _arun(
    x: np.ndarray,
    plan: Plan,
    planner: Planner,
    client: RequestClient,
    sender: AsyncSender,
    errors: list[BaseException],
    part_rows: int,
) -> None:
    if len(x) > part_rows and planner.hold(len(x)):
        await _asend_in_parts(x, plan, planner, client, sender, errors, part_rows)
    else:
        await asyncio.to_thread(planner.prepare_part, plan, x, 0, len(x))
        planner.claim(plan, list(plan.first), asynchronous=True)  # on the loop's thread, which owns its flights
        await client.run_round(plan, sender, errors)
    while True:
        if not errors:
            for flight in plan.waits.values():
                await flight.wait_async()
        if not planner.next_round(plan, errors, asynchronous=True):
            return
        await client.run_round(plan, sender, errors)


async def _asend_in_parts(
    x: np.ndarray,
    plan: Plan,
    planner: Planner,
    client: RequestClient,
    sender: AsyncSender,
    errors: list[BaseException],
    part_rows: int,
) -> None:
    """:func:`_send_in_parts` on the event loop: each part prepared on a thread while the loop sends the last."""
    held, tasks = len(x), []
    gate = asyncio.Semaphore(client.max_concurrency)
    try:
        for start in range(0, len(x), part_rows):
            if errors:
                break
            stop = min(len(x), start + part_rows)
            new = await asyncio.to_thread(planner.prepare_part, plan, x, start, stop)
            mine = planner.claim(plan, new, asynchronous=True, reserved=True)
            planner.ledger.release(stop - start - mine)
            held -= stop - start
            tasks += client.start_round(plan, sender, errors, gate)
    except BaseException:  # cancelled: so are its requests (each gives its room back)
        for _, task in tasks:
            task.cancel()
        raise
    finally:
        planner.ledger.release(held)
        await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)  # before any flight lands
        client.settle_cancelled(tasks, plan)


def _settle(plan: Plan, planner: Planner, mapper: LabelMapper, errors: list[BaseException]) -> np.ndarray:
    """The call's first error, with what it sent, raised; or its scores."""
    if errors:
        raise plan.settled(errors[0])
    return planner.finish(plan, mapper)
