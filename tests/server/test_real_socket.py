"""`openadk serve` on a loopback port, driven with raw sockets: what is refused before any body
byte is read, the caps on bodies in flight, the Host check and the access log."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.vertex.serving import Served, start_server

API_KEY = "socket-secret-5f1c2e"
APP_PATH = "/v1beta1/reasoningEngines/sockapp/sessions"
MIB = 1024 * 1024


def _start(api_key: str | None, *extra: str) -> Served:
    with pytest.MonkeyPatch.context() as patch:
        # The access log goes to stdout: unbuffered, so the test can read it while it runs.
        patch.setenv("PYTHONUNBUFFERED", "1")
        return start_server("memory", api_key=api_key, extra=extra)


@pytest.fixture(scope="module")
def keyed() -> Iterator[Served]:
    served = _start(
        API_KEY,
        "--max-bodies-in-flight",
        "3",
        "--max-body-bytes-in-flight",
        "3000",
        "--log-level",
        "info",
    )
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def open_server() -> Iterator[Served]:
    served = _start(None)
    try:
        yield served
    finally:
        served.stop()


def _address(served: Served) -> tuple[str, int]:
    host, port = served.url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(served: Served) -> socket.socket:
    sock = socket.create_connection(_address(served), timeout=10)
    sock.settimeout(10)
    return sock


def _head(length: int, *, key: str | None = None, expect: bool = False, host: str = "") -> bytes:
    lines = [
        f"POST {APP_PATH} HTTP/1.1",
        f"Host: {host or '127.0.0.1'}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if key:
        lines.append(f"x-goog-api-key: {key}")
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_head(sock: socket.socket) -> str:
    """Reads one response's status line and headers (a 100 Continue counts as one)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")


def _read_response(sock: socket.socket) -> tuple[int, str]:
    head = _read_head(sock)
    while head.startswith("HTTP/1.1 100"):
        head = head.split("\r\n\r\n", 1)[1] or _read_head(sock)
    match = re.match(r"HTTP/1\.1 (\d{3})", head)
    assert match, head
    return int(match.group(1)), head


def _body(length: int) -> bytes:
    text = b'{"userId": "u1"}'
    return text + b" " * (length - len(text))


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")  # pragma: no cover


def test_unauthenticated_uploads_get_401_on_their_headers(keyed: Served) -> None:
    for key in (None, "wrong-key"):
        with _connect(keyed) as sock:
            # Headers announcing 8 MiB, and not one byte of the body.
            sock.sendall(_head(8 * MIB - 1, key=key))
            status, head = _read_response(sock)
            assert status == 401, head
            assert "connection: close" in head.lower()


def test_sixty_unauthenticated_uploads_cost_little_memory(keyed: Served) -> None:
    pid = keyed.process.pid
    before = _rss(pid)
    length = 8 * MIB - 1
    sockets = []
    pending: dict[socket.socket, int] = {}
    try:
        for _ in range(60):
            sock = _connect(keyed)
            sock.sendall(_head(length))
            sock.setblocking(False)
            sockets.append(sock)
            pending[sock] = length
        chunk = b"x" * 65536
        # Push each body as fast as the server takes it; stop when it takes no more.
        while pending:
            _, writable, _ = select.select([], list(pending), [], 3)
            if not writable:
                break
            for sock in writable:
                try:
                    sent = sock.send(chunk[: pending[sock]])
                except BlockingIOError:
                    continue
                except OSError:  # refused and closed by the server
                    del pending[sock]
                    continue
                pending[sock] -= sent
                if not pending[sock]:
                    del pending[sock]
        held = _rss(pid)
    finally:
        for sock in sockets:
            sock.close()
    growth = held - before
    print(f"server RSS {before / MIB:.1f} MiB before, {held / MIB:.1f} MiB with 60 uploads")
    # Reading the bodies before the key check held ~8 MiB per connection (480 MiB).
    assert growth < 50 * MIB, f"RSS grew by {growth / MIB:.1f} MiB"
    ok = httpx.get(f"{keyed.url}{APP_PATH}", headers={"x-goog-api-key": API_KEY}, timeout=10)
    assert ok.status_code == 200


def test_bodies_in_flight_are_capped_by_count_then_bytes(keyed: Served) -> None:
    held = []
    try:
        # Three bodies announced and admitted (100 Continue), none sent yet.
        for _ in range(3):
            sock = _connect(keyed)
            sock.sendall(_head(500, key=API_KEY, expect=True))
            assert _read_head(sock).startswith("HTTP/1.1 100"), "not admitted"
            held.append(sock)
        with _connect(keyed) as fourth:
            fourth.sendall(_head(500, key=API_KEY, expect=True))
            status, head = _read_response(fourth)
            assert status == 503, head
            assert "retry-after: 1" in head.lower()
        # One finishes; its slot is free again.
        held[0].sendall(_body(500))
        assert _read_response(held[0])[0] == 200
        with _connect(keyed) as again:
            again.sendall(_head(500, key=API_KEY, expect=True))
            assert _read_head(again).startswith("HTTP/1.1 100")
            again.sendall(_body(500))
            assert _read_response(again)[0] == 200
        for sock in held[1:]:
            sock.sendall(_body(500))
            assert _read_response(sock)[0] == 200
        # Bytes: 2500 of the 3000 are taken, so 1000 more do not fit.
        with _connect(keyed) as big, _connect(keyed) as more:
            big.sendall(_head(2500, key=API_KEY, expect=True))
            assert _read_head(big).startswith("HTTP/1.1 100")
            more.sendall(_head(1000, key=API_KEY, expect=True))
            status, head = _read_response(more)
            assert status == 503, head
            big.sendall(_body(2500))
            assert _read_response(big)[0] == 200
    finally:
        for sock in held:
            sock.close()


def test_the_access_log_never_shows_the_key(keyed: Served) -> None:
    url = f"{keyed.url}{APP_PATH}"
    assert httpx.get(url, params={"key": API_KEY, "pageSize": "5"}, timeout=10).status_code == 200
    assert httpx.get(url, params={"key": "a-wrong-key"}, timeout=10).status_code == 401
    deadline = time.monotonic() + 10
    while "pageSize=5" not in keyed.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = keyed.log()
    lines = [line for line in log.splitlines() if APP_PATH in line and "key=" in line]
    assert len(lines) >= 2, log
    assert all("key=REDACTED" in line for line in lines), lines
    assert API_KEY not in log and "a-wrong-key" not in log


def test_without_a_key_only_loopback_hosts(open_server: Served) -> None:
    _, port = _address(open_server)
    url = f"{open_server.url}{APP_PATH}"
    for good in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert httpx.get(url, headers={"host": good}, timeout=10).status_code == 200, good
    for bad in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.example:{port}"):
        response = httpx.get(url, headers={"host": bad}, timeout=10)
        assert response.status_code == 421, bad
        assert "127.0.0.1, localhost or [::1]" in response.json()["error"]["message"]
    # A rebinding page's POST is refused on its headers, before its body.
    with _connect(open_server) as sock:
        sock.sendall(_head(4 * MIB, host="evil.example"))
        status, head = _read_response(sock)
        assert status == 421, head
    slash = httpx.get(f"{url}/", headers={"host": "evil.example"}, timeout=10)
    assert slash.status_code == 421 and "location" not in slash.headers


def test_redirects_are_never_built_from_the_host(keyed: Served) -> None:
    response = httpx.get(
        f"{keyed.url}{APP_PATH}/",
        headers={"host": "evil.example", "x-goog-api-key": API_KEY},
        timeout=10,
    )
    assert response.status_code == 404
    assert "location" not in response.headers and "evil.example" not in response.text
