"""Starting ``openadk serve`` in a subprocess on a free port, for tests over a real socket."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx

POSTGRES_URL = "postgresql+asyncpg://" + os.environ.get(
    "OPENADK_TEST_POSTGRES", "postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    """A running ``openadk serve``."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: str
    api_key: str | None
    _log: object = field(repr=False, default=None)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()
                self.process.wait()
        log = self._log
        if log is not None:
            log.close()  # type: ignore[attr-defined]
            self._log = None


def start_server(db_url: str, *, api_key: str | None = None, extra: tuple[str, ...] = ()) -> Served:
    """Starts ``python -m openadk serve`` and waits until /healthz answers (at most 30 s)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by Served.stop
        prefix="openadk-serve-", suffix=".log", delete=False
    )
    args = [sys.executable, "-m", "openadk", "serve", "--db", db_url, "--port", str(port)]
    if api_key:
        args += ["--api-key", api_key]
    args += ["--log-level", "warning", *extra]
    env = {k: v for k, v in os.environ.items() if k != "OPENADK_API_KEY"}
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    served = Served(process, f"http://127.0.0.1:{port}", log.name, api_key, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            served.stop()
            raise RuntimeError(f"openadk serve exited early:\n{served.log()}")
        try:
            if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    served.stop()
    raise RuntimeError(f"openadk serve did not come up:\n{served.log()}")


_shared: dict[str, Served] = {}


def shared_server(db_url: str, api_key: str) -> Served:
    """One server per database URL for the whole test run, stopped at exit."""
    served = _shared.get(db_url)
    if served is None or served.process.poll() is not None:
        served = start_server(db_url, api_key=api_key)
        _shared[db_url] = served
        atexit.register(served.stop)
    return served
