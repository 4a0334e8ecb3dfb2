"""Database URLs as people type them: libpq's sslmode, bare SQLite paths, postgres://, extras.

Every form goes through one function (`openadk.sessions._dialects.normalize_url`) that the
service, the migrations and every CLI ``--db`` use. Bad URLs are a one-line ``ValueError``.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, exc

from openadk.cli import main
from openadk.errors import StorageError
from openadk.sessions import DatabaseSessionService, _dialects, migrations
from tests.contract.backends import POSTGRES

PG = f"postgresql+asyncpg://{POSTGRES}"


def connect_params(service: DatabaseSessionService) -> dict[str, Any]:
    """Records the keyword arguments the driver's connect() gets."""
    seen: dict[str, Any] = {}

    @event.listens_for(service.engine.sync_engine, "do_connect")
    def _record(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        seen.update(params)

    return seen


async def round_trip(service: DatabaseSessionService) -> None:
    app = f"urls-{uuid.uuid4().hex[:8]}"
    made = await service.create_session(app_name=app, user_id="u", state={"k": 1})
    got = await service.get_session(app_name=app, user_id="u", session_id=made.id)
    assert got is not None and got.state == {"k": 1}
    await service.delete_session(app_name=app, user_id="u", session_id=made.id)


# libpq's sslmode on asyncpg, against the local server (which has no TLS) ---------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["postgresql+asyncpg", "postgresql", "postgres"])
@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
async def test_sslmodes_that_allow_plain_connections_connect(scheme: str, mode: str) -> None:
    async with DatabaseSessionService(f"{scheme}://{POSTGRES}?sslmode={mode}") as service:
        assert service.engine.url.get_driver_name() == "asyncpg"
        assert "sslmode" not in service.engine.url.query
        seen = connect_params(service)
        await round_trip(service)
    assert seen["ssl"] == (False if mode == "disable" else mode)
    assert "sslmode" not in seen


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_sslmodes_that_need_tls_fail_clearly_on_a_server_without_it(mode: str) -> None:
    # The local server has no TLS: libpq refuses to go on in these modes, and so does openadk.
    async with DatabaseSessionService(f"{PG}?sslmode={mode}") as service:
        with pytest.raises(StorageError) as caught:
            await round_trip(service)
    message = str(caught.value)
    assert "\n" not in message
    assert "rejected SSL upgrade" in message or "root certificate" in message, message


@pytest.mark.asyncio
async def test_certificate_files_become_an_ssl_context() -> None:
    import certifi

    ca = certifi.where()
    expected = {
        "verify-full": (ssl.CERT_REQUIRED, True),
        "verify-ca": (ssl.CERT_REQUIRED, False),
        "require": (ssl.CERT_REQUIRED, False),  # a root certificate makes require verify (libpq)
        "prefer": (ssl.CERT_NONE, False),
    }
    for mode, (verify_mode, check_hostname) in expected.items():
        async with DatabaseSessionService(f"{PG}?sslmode={mode}&sslrootcert={ca}") as service:
            seen = connect_params(service)
            with pytest.raises(StorageError, match="rejected SSL upgrade"):
                await round_trip(service)
        context = seen["ssl"]
        assert isinstance(context, ssl.SSLContext), mode
        assert (context.verify_mode, context.check_hostname) == (verify_mode, check_hostname)
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert not {"sslmode", "sslrootcert"} & set(seen)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_client_certificate_and_key_are_loaded(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x"),
            *("-days", "1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    service = DatabaseSessionService(f"{PG}?sslmode=require&sslcert={cert}&sslkey={key}")
    assert "sslcert" not in service.engine.url.query
    with pytest.raises(ValueError, match=r"cannot load the TLS files \(sslcert=.*, sslkey="):
        DatabaseSessionService(f"{PG}?sslmode=require&sslcert={key}&sslkey={cert}")
    with pytest.raises(ValueError, match="sslkey without sslcert"):
        DatabaseSessionService(f"{PG}?sslmode=require&sslkey={key}")


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("sslrootcert=/no/such/ca.pem&sslmode=verify-full", r"cannot load the TLS files"),
        ("sslmode=sometimes", r"sslmode must be one of disable, allow, prefer, require"),
        ("sslmode=require&sslfactor=3", r"Unknown query parameter 'sslfactor'.*asyncpg"),
        ("application_nam=x", r"Unknown query parameter 'application_nam'.*asyncpg"),
    ],
)
def test_bad_postgres_parameters_are_one_line_value_errors(query: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        DatabaseSessionService(f"postgresql+asyncpg://u:hunter2@127.0.0.1/x?{query}")
    assert "\n" not in str(caught.value) and "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://root@127.0.0.1/test?charset=utf8mb4&sslmode=require",
        "mysql+asyncmy://root@127.0.0.1/test?colour=blue",
        "postgresql+psycopg://postgres@127.0.0.1/test?colour=blue",
        "sqlite+aiosqlite:///{tmp}/x.db?colour=blue",
    ],
)
def test_an_unknown_parameter_is_named_for_every_driver(url: str, tmp_path: Path) -> None:
    name = "sslmode" if "sslmode" in url else "colour"
    with pytest.raises(ValueError, match=f"Unknown query parameter '{name}'") as caught:
        DatabaseSessionService(url.format(tmp=tmp_path))
    assert "\n" not in str(caught.value)


@pytest.mark.asyncio
async def test_known_driver_parameters_still_pass(tmp_path: Path) -> None:
    for url in (
        f"{PG}?ssl=disable",
        f"postgresql+psycopg://{POSTGRES}?sslmode=disable&application_name=openadk-test",
        "mysql+asyncmy://root@127.0.0.1:3306/test?charset=utf8mb4&connect_timeout=5",
        f"sqlite+aiosqlite:///{tmp_path / 'p.db'}?timeout=5",
    ):
        async with DatabaseSessionService(url) as service:
            await round_trip(service)


# Bare paths, postgres://, what a bad URL says -------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("typed", ["sessions.db", "./first.db", "data/chat.sqlite", "{tmp}/x.db"])
async def test_a_bare_sqlite_path_is_a_sqlite_file(
    typed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    path = typed.format(tmp=tmp_path)
    assert _dialects.normalize_url(path).render_as_string() == f"sqlite+aiosqlite:///{path}"
    async with DatabaseSessionService(path) as service:
        await round_trip(service)
    assert (tmp_path / path).exists()


def test_every_cli_db_option_takes_a_bare_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade", "--db", "sessions.db"]) == 0
    assert "Created google-adk's V1 tables" in capsys.readouterr().out
    assert main(["db", "check", "--db", "./sessions.db"]) == 0
    assert main(["sessions", "list", "--app", "a", "--db", "sessions.db"]) == 0
    out = capsys.readouterr()
    assert "Invalid database URL" not in out.out + out.err

    from openadk.server import build_service

    service = build_service("./sessions.db")  # `openadk serve --db ./sessions.db`
    assert isinstance(service, DatabaseSessionService)
    assert service.engine.url.database == "./sessions.db"
    assert os.listdir(tmp_path) == ["sessions.db"]


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("sessions", "sessions"),
        ("postgres ://u:hunter2@host/db", "postgres ://u:***@host/db"),
        ("nosuchdb+driver://u:hunter2@h/db", "nosuchdb+driver://u:***@h/db"),
    ],
)
def test_a_bad_url_shows_what_was_typed_and_what_a_url_looks_like(
    typed: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="Invalid database URL") as caught:
        DatabaseSessionService(typed)
    message = str(caught.value)
    assert f"'{shown}'" in message and "hunter2" not in message and "\n" not in message
    assert "sqlite+aiosqlite:///./sessions.db" in message and "ending in .db" in message
    assert main(["db", "check", "--db", typed]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and shown in err and "hunter2" not in err


def test_a_spanner_url_without_its_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy.dialects import registry

    real_load = registry.load

    def not_installed(name: str) -> Any:
        if name.startswith("spanner"):
            raise exc.NoSuchModuleError(f"Can't load plugin: sqlalchemy.dialects:{name}")
        return real_load(name)

    def broken(name: str) -> Any:
        if name.startswith("spanner"):
            raise ImportError("No module named 'google.cloud.spanner_dbapi'")
        return real_load(name)

    url = "spanner+spanner:///projects/p/instances/i/databases/d"
    for load in (not_installed, broken):
        monkeypatch.setattr(registry, "load", load)
        with pytest.raises(ValueError, match=r'pip install "openadk\[spanner\]"') as caught:
            DatabaseSessionService(url)
        assert "Invalid database URL" not in str(caught.value)


@pytest.mark.asyncio
async def test_migrations_take_the_same_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (await migrations.status("fresh.db")).layout is None  # no file yet, none created
    assert not (tmp_path / "fresh.db").exists()
    await migrations.upgrade("fresh.db")
    assert (await migrations.status("sqlite:///fresh.db")).current == migrations.HEAD
    assert _dialects.redact_url("postgres://u:hunter2@h/db") == "postgresql://u:***@h/db"
