"""Real Redis servers the tests start themselves: a 3-master Cluster and durable single servers.

Each server is a ``redis-server`` process on a loopback port of its own (7100-7199), with its
files in a temporary directory; all are stopped when the test process exits. Nothing here
touches the shared server on 6379.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
_BASE_PORT = int(os.environ.get("OPENADK_TEST_REDIS_PORTS", "7100"))
_next_port = _BASE_PORT + (os.getpid() % 8) * 12  # xdist workers get their own ports


def _free_port() -> int:
    global _next_port
    while _next_port < _BASE_PORT + 100:
        port = _next_port
        _next_port += 1
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 7100-7199 for a test redis-server")


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
        out = subprocess.run(
            [REDIS_CLI or "redis-cli", "-p", str(port), "ping"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not answer PING")


@dataclass
class RedisServer:
    """One ``redis-server`` process the tests own."""

    port: int
    directory: Path
    options: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_ready(self.port, self.proc)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, what a crash would leave."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def start_server(*options: str) -> RedisServer:
    """A fresh redis-server (stopped at exit) with extra config ``options``."""
    directory = Path(tempfile.mkdtemp(prefix="openadk-redis-"))
    server = RedisServer(_free_port(), directory, list(options))
    server.start()
    atexit.register(server.stop)
    return server


@dataclass
class RedisClusterProcesses:
    """A Redis Cluster of three masters (no replicas) on loopback ports."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(size: int = 3) -> RedisClusterProcesses:
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server / redis-cli are not installed")
    root = Path(tempfile.mkdtemp(prefix="openadk-redis-cluster-"))
    nodes = []
    for _ in range(size):
        port = _free_port()
        nodes.append(
            RedisServer(
                port,
                root / str(port),
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(root / f"nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "5000",
                    "--appendonly",
                    "no",
                ],
            )
        )
    cluster = RedisClusterProcesses(nodes)
    atexit.register(cluster.stop)
    for node in nodes:
        node.start()
    subprocess.run(
        [
            REDIS_CLI,
            "--cluster",
            "create",
            *(f"127.0.0.1:{node.port}" for node in nodes),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ],
        check=True,
        capture_output=True,
    )
    # Wait until every node agrees the cluster is up (slots assigned, state ok).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = [
            subprocess.run(
                [REDIS_CLI, "-p", str(node.port), "cluster", "info"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            for node in nodes
        ]
        if all("cluster_state:ok" in state for state in states):
            return cluster
        time.sleep(0.1)
    cluster.stop()
    raise RuntimeError("the test Redis Cluster did not reach cluster_state:ok")


_shared: RedisClusterProcesses | None = None


def shared_cluster() -> RedisClusterProcesses:
    """One cluster for the whole test process (started on first use)."""
    global _shared
    if _shared is None:
        _shared = start_cluster()
    return _shared


@contextlib.contextmanager
def stopped_at_exit(server: RedisServer):  # type: ignore[no-untyped-def]
    try:
        yield server
    finally:
        server.stop()
