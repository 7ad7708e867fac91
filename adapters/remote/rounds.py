"""One predict call of RemoteModel, blocking or on an event loop: rounds of sending and waiting.

A round sends the chunks the call has claimed (:class:`~bar_sdk.adapters.remote.client.RequestClient`),
then waits for the images a concurrent call is sending; :meth:`Planner.next_round
<bar_sdk.adapters.remote.planning.Planner.next_round>` takes their answers and claims again those
whose flight failed, until nothing is left to send. Whatever happens, the call's own flights land (a
flight that never landed would keep its waiters waiting), and a failed call raises its first error,
saying what the call had sent (:meth:`Plan.settled <bar_sdk.adapters.remote.planning.Plan.settled>`).
A large call's first round goes out in parts: each part's requests leave while the next part is
quantised and hashed, against room held in the budget for every row (:class:`_Call`).
The two paths differ only in how they send (threads or coroutines) and wait.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from bar_sdk.adapters.remote.client import RequestClient
from bar_sdk.adapters.remote.http import AsyncSender, default_ssl_context
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.planning import Chunk, Plan, Planner

__all__ = ["predict", "apredict"]


@dataclass
class _Call:
    """One predict call: its checked images, its plan, the parts that make it up, and its errors so far."""

    x: np.ndarray
    planner: Planner
    client: RequestClient
    part_rows: int
    plan: Plan = field(init=False)
    errors: list[BaseException] = field(default_factory=list)
    held: int = 0  # room held for rows not prepared yet (a call sent in parts)

    def __post_init__(self) -> None:
        self.plan = self.planner.start(self.x)

    def in_parts(self) -> bool:
        """Whether to send in parts: more than one part, and room in the budget for every row (then held)."""
        if len(self.x) > self.part_rows and self.planner.hold(len(self.x)):
            self.held = len(self.x)
            return True
        return False

    def parts(self) -> Iterator[tuple[int, int]]:
        """The parts' rows ``(start, stop)``, until a request fails for good."""
        for start in range(0, len(self.x), self.part_rows):
            if self.errors:
                return
            yield start, min(len(self.x), start + self.part_rows)

    def claim_part(self, start: int, stop: int, new: list[str], *, asynchronous: bool) -> None:
        """Claim a prepared part's new images against the held room; give back the room of its other rows."""
        mine = self.planner.claim(self.plan, new, asynchronous, reserved=True)
        self.planner.ledger.release(stop - start - mine)
        self.held -= stop - start

    def release_held(self) -> None:
        """Give back the room of rows never prepared (an error or an interrupt stopped the call)."""
        self.planner.ledger.release(self.held)
        self.held = 0

    def claim_whole(self, *, asynchronous: bool) -> None:
        """Claim the call prepared whole: refused whole, before anything is sent, when its new images do not fit."""
        self.planner.claim(self.plan, list(self.plan.first), asynchronous)

    def next_round(self, *, asynchronous: bool) -> bool:
        return self.planner.next_round(self.plan, self.errors, asynchronous=asynchronous)

    def land(self) -> None:
        """Land the call's flights, whatever happened (a flight never landed fails: its waiters send it)."""
        self.planner.land(self.plan, list(self.plan.owned))

    def settle(self, mapper: LabelMapper) -> np.ndarray:
        """The call's first error, with what it sent, raised; or its scores."""
        if self.errors:
            raise self.plan.settled(self.errors[0])
        return self.planner.finish(self.plan, mapper)


def predict(
    x: np.ndarray, planner: Planner, client: RequestClient, mapper: LabelMapper, *, part_rows: int
) -> np.ndarray:
    """The score rows of the checked images ``x``, blocking (several requests go out on threads).

    A call of more than ``part_rows`` images whose every row fits in the budget is prepared a part
    at a time, each part's requests leaving while the next is quantised and hashed (see
    :func:`_send_in_parts`); any other call is prepared whole first, so that one over the budget is
    refused whole, before anything is sent.
    """
    call = _Call(x, planner, client, part_rows)
    try:
        if call.in_parts():
            _send_in_parts(call)
        else:
            planner.prepare_part(call.plan, x, 0, len(x))
            call.claim_whole(asynchronous=False)
            client.send_round(call.plan, call.errors)
        while True:
            if not call.errors:
                for flight in call.plan.waits.values():
                    flight.wait()
            if not call.next_round(asynchronous=False):
                break
            client.send_round(call.plan, call.errors)
    finally:
        call.land()
    return call.settle(mapper)


def _send_in_parts(call: _Call) -> None:
    """Prepare and claim the call a part at a time, each part's requests sent while the next is prepared.

    The ledger already holds room for every row (:meth:`_Call.in_parts`): no part can be refused,
    so nothing sent is wasted on a call the budget refuses later. Each part gives back the room of
    its rows that were cached, repeated or in flight elsewhere; what was not prepared (an error
    stopped the call) is given back at the end. Returns when every request sent has settled.
    """
    pending: list[tuple[Chunk, Future[None]]] = []
    try:
        for start, stop in call.parts():
            call.claim_part(start, stop, call.planner.prepare_part(call.plan, call.x, start, stop), asynchronous=False)
            pending += call.client.submit_round(call.plan, call.errors)
    except BaseException:  # interrupted: what has not started is not sent
        for chunk, future in pending:
            if future.cancel():
                call.client.give_up(chunk, call.plan)
        raise
    finally:
        call.release_held()
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
    call = _Call(x, planner, client, part_rows)
    try:
        if async_client is not None:
            await _arun(call, AsyncSender(async_client, timeout, max_response_bytes))
        else:
            import httpx

            limits = httpx.Limits(max_connections=max_concurrency)
            # the CA bundle read once, not by every call's client (tens of ms of the loop each time)
            async with httpx.AsyncClient(timeout=timeout, limits=limits, verify=default_ssl_context()) as own:
                await _arun(call, AsyncSender(own, timeout, max_response_bytes))
    finally:
        call.land()
    return call.settle(mapper)


async def _arun(call: _Call, sender: AsyncSender) -> None:
    plan, client = call.plan, call.client
    if call.in_parts():
        await _asend_in_parts(call, sender)
    else:
        await asyncio.to_thread(call.planner.prepare_part, plan, call.x, 0, len(call.x))
        call.claim_whole(asynchronous=True)  # on the loop's thread, which owns the flights it claims
        await client.run_round(plan, sender, call.errors)
    while True:
        if not call.errors:
            for flight in plan.waits.values():
                await flight.wait_async()
        if not call.next_round(asynchronous=True):
            return
        await client.run_round(plan, sender, call.errors)


async def _asend_in_parts(call: _Call, sender: AsyncSender) -> None:
    """:func:`_send_in_parts` on the event loop: each part prepared on a thread while the loop sends the last."""
    tasks: list[tuple[Chunk, asyncio.Task[None]]] = []
    gate = asyncio.Semaphore(call.client.max_concurrency)
    try:
        for start, stop in call.parts():
            new = await asyncio.to_thread(call.planner.prepare_part, call.plan, call.x, start, stop)
            call.claim_part(start, stop, new, asynchronous=True)
            tasks += call.client.start_round(call.plan, sender, call.errors, gate)
    except BaseException:  # cancelled: so are its requests (each gives its room back)
        for _, task in tasks:
            task.cancel()
        raise
    finally:
        call.release_held()
        await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)  # before any flight lands
        call.client.settle_cancelled(tasks, call.plan)
