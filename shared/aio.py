"""asyncio helpers for client steps that may hang or be cancelled by the client itself."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def consume_outcome(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a step left behind, so asyncio does not report it as unhandled."""
    if not task.cancelled():
        task.exception()


def uncancel() -> None:
    """Forget a cancellation of the current task that was not ours to take (a client library
    cancelled something we awaited), so the task can go on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()


async def bounded(step: Coroutine[Any, Any, T], *, seconds: float, what: str) -> T:
    """Run `step` for at most `seconds`; one still running then is cancelled and left behind,
    and TimeoutError names `what`. Unlike `wait_for`, this returns on time even if the step
    swallows its cancellation (seen in Kafka clients closing after a broker restart)."""
    task = asyncio.ensure_future(step)
    done, _pending = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(consume_outcome)
    raise TimeoutError(f"{what} took over {seconds:.0f}s")
