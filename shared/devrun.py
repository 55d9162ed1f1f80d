"""`make run`: the embedded broker and the four services on SQLite under ./var."""

from __future__ import annotations

import getpass
import os
import signal
import sys
import time
from pathlib import Path

from shared.auth import KeyStore
from shared.broker import port_is_free
from shared.contracts.envelope import DEFAULT_TENANT
from shared.keys import demo_keys
from shared.stack import DEFAULT_PORTS, SERVICES, LocalStack, sqlite_urls


def main() -> int:
    var = Path("var").resolve()
    keys_file = Path(os.environ.setdefault("QS_AUTH_KEYS_FILE", str(var / "api-keys.json")))
    demo_tokens = var / "demo-keys.txt"
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
        print_demo_keys(
            store=KeyStore(keys_file),
            tokens_file=demo_tokens,
            bootstrap_servers=stack.broker.bootstrap_servers,
        )
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


def print_demo_keys(*, store: KeyStore, tokens_file: Path, bootstrap_servers: str) -> None:
    """On the first run, issue one demo key per client kind (published to admin.events, so
    the compliance log has them) and keep the tokens in a private file; show them each run."""
    if not store.records():
        tokens = demo_keys(
            store=store,
            tenant=DEFAULT_TENANT,
            bootstrap_servers=bootstrap_servers,
            operator=getpass.getuser(),
        )
        tokens_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.writelines(f"{kind}\t{token}\n" for kind, token in tokens.items())
    if tokens_file.exists():
        print(f"\nDemo API keys ({tokens_file}; send as Authorization: Bearer <key>):")
        for line in tokens_file.read_text().splitlines():
            kind, _, token = line.partition("\t")
            print(f"  {kind:<10} {token}")
    else:
        print(f"\nAPI keys: {store.path} (issue one with python -m shared.keys create)")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
