"""`make run`: the embedded broker and the four services on SQLite under ./var."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from shared.broker import port_is_free
from shared.stack import DEFAULT_PORTS, SERVICES, LocalStack, sqlite_urls


def main() -> int:
    var = Path("var").resolve()
    ports = {name: p for name, p in DEFAULT_PORTS.items() if port_is_free(p)}
    stack = LocalStack(
        workdir=var / "logs",
        database_urls=sqlite_urls(var),
        ports=ports,
        broker_port=9092 if port_is_free(9092) else None,
    )
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    print(f"starting broker on {stack.broker.bootstrap_servers} and four services ...", flush=True)
    try:
        stack.start()
        print("\nQingshou is up (Ctrl-C stops everything):", flush=True)
        print(f"  broker      {stack.broker.bootstrap_servers}  (embedded, memory only)")
        for name in SERVICES:
            print(f"  {name:<11} {stack.url(name)}   docs: {stack.url(name)}/docs")
        print(f"  data        {var}   logs: {stack.workdir}", flush=True)
        while not stopping:
            for name, svc in stack.services.items():
                if svc.process is not None and svc.process.poll() is not None:
                    print(f"{name} exited ({svc.process.returncode}); see {svc.log_path}")
                    stopping = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
