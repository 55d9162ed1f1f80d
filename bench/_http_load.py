"""HTTP load from a separate process (an httpx load generator), and a service process to aim it at.

`measure` runs the load generator in a child process so that the client's CPU is not the
server's; `serve` migrates and starts one `python -m services.<name>` process on a free port.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _auth import HEADERS  # noqa: E402  (also points served services at the bench's key file)

#: (worker index, request number of that worker) -> request body; numbers never repeat within
#: one `measure` call (warm-up included), so a factory can make unique keys from them.
BodyFactory = Callable[[int, int], bytes]


class LoadResult(NamedTuple):
    req_per_s: float  # successful responses per second of the measured phase
    p50_ms: float  # of successful responses
    p99_ms: float
    errors: int  # unexpected statuses and transport errors
    first_error: str = ""


def _summary(
    ok: int, latencies: list[float], errors: int, first: str, elapsed: float
) -> LoadResult:
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100)
        p50, p99 = cuts[49] * 1000, cuts[98] * 1000
    else:
        p50 = p99 = math.nan
    return LoadResult(ok / elapsed if elapsed > 0 else 0.0, p50, p99, errors, first)


async def _generate(
    url: str,
    body: bytes | None,
    bodies: BodyFactory | None,
    seconds: float,
    warmup_s: float,
    concurrency: int,
    expect: int | None,
) -> LoadResult:
    import httpx

    headers = {"content-type": "application/json", **HEADERS}
    counters = [0] * concurrency

    def good(status: int) -> bool:
        return status == expect if expect is not None else 200 <= status < 300

    async with httpx.AsyncClient(
        timeout=10, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def phase(duration: float) -> LoadResult:
            ok = errors = 0
            first = ""
            latencies: list[float] = []
            deadline = time.perf_counter() + duration

            async def worker(index: int) -> None:
                nonlocal ok, errors, first
                while time.perf_counter() < deadline:
                    payload = body if bodies is None else bodies(index, counters[index])
                    counters[index] += 1
                    t = time.perf_counter()
                    try:
                        if payload is None:
                            r = await client.get(url, headers=HEADERS)
                        else:
                            r = await client.post(url, content=payload, headers=headers)
                    except httpx.HTTPError as exc:
                        errors += 1
                        first = first or repr(exc)
                        continue
                    latency = time.perf_counter() - t
                    if good(r.status_code):
                        ok += 1
                        latencies.append(latency)
                    else:
                        errors += 1
                        first = first or f"HTTP {r.status_code}: {r.text[:300]}"

            started = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
            return _summary(ok, latencies, errors, first, time.perf_counter() - started)

        if warmup_s > 0:
            await phase(warmup_s)
        return await phase(seconds)


def _child(out: Any, *args: Any) -> None:
    try:
        out.put(asyncio.run(_generate(*args)))
    except BaseException as exc:
        out.put(exc)
        raise


def measure(
    url: str,
    *,
    body: bytes | None = None,
    bodies: BodyFactory | None = None,
    seconds: float = 8.0,
    concurrency: int = 16,
    warmup_s: float = 0.0,
    expect: int | None = None,
) -> LoadResult:
    """GET `url` (no body) or POST JSON (`body`, or `bodies(worker, n)` per request) from
    `concurrency` connections in a child process for `seconds`, after `warmup_s` unmeasured.
    A response is good if its status is `expect` (any 2xx when None); the others count as errors
    and stay out of the rate and latencies. `bodies` must be picklable if the start method is
    not fork (a module-level function or an instance of a module-level class)."""
    out: multiprocessing.Queue[LoadResult | BaseException] = multiprocessing.Queue()
    args = (url, body, bodies, seconds, warmup_s, concurrency, expect)
    proc = multiprocessing.Process(target=_child, args=(out, *args), daemon=True)
    proc.start()
    deadline = time.monotonic() + warmup_s + seconds + 60
    try:
        while True:
            try:
                result = out.get(timeout=1.0)
                break
            except queue.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"load generator exited with {proc.exitcode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"load generator still running against {url}") from None
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if isinstance(result, BaseException):
        raise RuntimeError(f"load generator failed against {url}") from result
    return result


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def serve(
    service: str,
    env: Mapping[str, str],
    *,
    workdir: Path,
    migrate: bool = True,
    ready_path: str = "/healthz",
    timeout_s: float = 90.0,
) -> Iterator[str]:
    """`python -m services.<service> migrate`, then `serve --port <free port>` with `env` over
    this process's environment; yields the base URL once `ready_path` answers 200, and stops the
    process (SIGTERM, then SIGKILL) on exit. Its output goes to `workdir/<service>.log`."""
    import httpx

    from shared.broker import free_port, stop_process

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    module = f"services.{service}"
    if migrate:
        done = subprocess.run(
            [sys.executable, "-m", module, "migrate"],
            env=full_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{module} migrate exited with {done.returncode}:\n{done.stderr[-3000:]}"
            )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / f"{service}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--port", str(port)],
            env=full_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{module} serve exited with {process.returncode}:\n{_tail(log_path)}"
                    )
                try:
                    if client.get(f"{base}{ready_path}").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{module} not ready after {timeout_s}s; see {log_path}")
                time.sleep(0.2)
        yield base
    finally:
        stop_process(process)
