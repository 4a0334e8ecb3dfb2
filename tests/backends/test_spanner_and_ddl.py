"""Schema DDL per dialect, compared with google-adk's own, and Cloud Spanner without a server.

There is no Spanner emulator on this machine, so Spanner is tested as far as it goes without
one: the service builds its (synchronous, threaded) engine from the URL, compiles google-adk's
DDL, and stores tz-aware times.
"""

from __future__ import annotations

import datetime

import pytest
from google.adk.sessions.schemas import v1 as adk_v1
from google.cloud.sqlalchemy_spanner import SpannerDialect
from sqlalchemy import Engine, Index
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from openadk.sessions import DatabaseSessionService
from openadk.sessions import _schema as ours
from openadk.sessions._schema import from_db_time, to_db_time

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),
    "mysql": mysql.dialect(),
    "mssql": mssql.dialect(),
    "spanner": SpannerDialect(),
}
TABLES = ["adk_internal_metadata", "app_states", "user_states", "sessions", "events"]


def ddl(table: object, dialect: Dialect) -> str:
    return " ".join(str(CreateTable(table).compile(dialect=dialect)).split())  # type: ignore[arg-type]


MYSQL_EXACT = {
    "mysql": (mysql.dialect(), "utf8mb4_0900_bin"),
    "mariadb": (mysql.dialect(is_mariadb=True), "utf8mb4_nopad_bin"),
}


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
@pytest.mark.parametrize("table_name", TABLES)
def test_ddl_is_google_adks(dialect_name: str, table_name: str) -> None:
    dialect = DIALECTS[dialect_name]
    theirs = adk_v1.Base.metadata.tables[table_name]
    mine = ours.metadata.tables[table_name]
    if dialect_name == "mysql":
        # The one allowed difference (DESIGN decision 10): key columns carry a binary NO PAD
        # collation; google-adk's take the server default (utf8mb4_general_ci: 'ALICE' = 'alice').
        exact = " CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin"
        keys = ours.KEY_COLUMNS.get(table_name, ())
        for column in keys:
            assert f"{column} VARCHAR(128){exact} NOT NULL" in ddl(mine, dialect)
        assert ddl(mine, dialect).count(exact) == len(keys)
        assert ddl(mine, dialect).replace(exact, "") == ddl(theirs, dialect)
    else:
        assert ddl(mine, dialect) == ddl(theirs, dialect)


@pytest.mark.parametrize("server", list(MYSQL_EXACT))
def test_mysql_key_collation_is_no_pad_binary_per_server(server: str) -> None:
    dialect, collation = MYSQL_EXACT[server]
    text = ddl(ours.sessions, dialect)
    assert text.count(f"COLLATE {collation}") == 3
    old = mysql.dialect()
    old.server_version_info = (5, 7, 44)
    assert ours.exact_collation(old) == "utf8mb4_bin"  # MySQL 5.7 has no NO PAD binary one


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_index_is_google_adks(dialect_name: str) -> None:
    dialect = DIALECTS[dialect_name]

    def index_ddl(table: object) -> str:
        (index,) = [i for i in table.indexes if isinstance(i, Index)]  # type: ignore[attr-defined]
        return str(CreateIndex(index).compile(dialect=dialect))

    assert index_ddl(ours.events) == index_ddl(adk_v1.Base.metadata.tables["events"])


def test_spanner_url_builds_a_threaded_engine_without_connecting() -> None:
    url = "spanner+spanner:///projects/p/instances/i/databases/d"
    service = DatabaseSessionService(url)
    assert isinstance(service.engine, Engine)
    assert service.engine.dialect.name.startswith("spanner")
    assert service._aware_times
    assert repr(service) == f"DatabaseSessionService({url!r})"


def test_spanner_times_are_aware_utc_and_round_trip() -> None:
    stamp = 1_900_000_000.123456
    aware = to_db_time(stamp, aware=True)
    assert aware.tzinfo is datetime.timezone.utc
    assert from_db_time(aware).timestamp() == pytest.approx(stamp, abs=1e-6)
    naive = to_db_time(stamp)
    assert naive.tzinfo is None
    assert from_db_time(naive) == aware
