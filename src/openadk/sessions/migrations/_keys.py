"""Revision 0002's work: make the key columns compare exactly on MySQL/MariaDB, in place.

google-adk (and openadk before revision 0002) created the tables with the server's default
collation, ``utf8mb4_general_ci`` on most servers, under which ``'ALICE'``, ``'alice'``,
``'Alicé'`` and ``'alice '`` are one id, and so are many distinct emoji. This revision gives the
key columns of ``sessions``, ``events``, ``app_states``, ``user_states`` and
``openadk_session_expiry`` the server's binary NO PAD collation (`exact_collation`), keeping
their type, length and data.

No two rows can clash in the process: a primary key under a case-insensitive collation already
kept ids that differ only by case, accents or trailing spaces from both existing. What can exist
is an event (or expiry row) whose session ids are spelled differently from its session's row,
the foreign key having matched them loosely; those rows are rewritten to the session's spelling
first, so the foreign keys still hold afterwards.

Every step is safe to rerun (each DDL statement commits on MySQL): a killed run is finished by
running it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, inspect, text

from openadk.sessions._schema import (
    KEY_COLUMNS,
    MYSQL_FAMILY,
    compares_exactly,
    exact_collation,
    metadata,
)

__all__ = ["KeyProblems", "find_key_problems", "make_keys_exact", "session_key_collation"]

logger = logging.getLogger("openadk.migrations")

_CHILDREN = ("events", "openadk_session_expiry")
"""Tables with a foreign key to ``sessions`` on (app_name, user_id, session_id)."""
_PARENT_KEYS = ("app_name", "user_id", "id")
_CHILD_KEYS = ("app_name", "user_id", "session_id")


@dataclass(frozen=True)
class KeyProblems:
    """What stands between a MySQL/MariaDB database and exact key comparisons."""

    loose: tuple[str, ...] = ()
    """``table.column (collation)`` of each key column that compares loosely."""
    missing_foreign_keys: tuple[str, ...] = ()
    """Tables whose foreign key to ``sessions`` is missing (an interrupted revision 0002)."""
    collation: str | None = None
    """The collation the key columns get."""

    def __bool__(self) -> bool:
        return bool(self.loose or self.missing_foreign_keys)

    def describe(self) -> str:
        """A phrase for messages."""
        parts = []
        if self.loose:
            found = sorted({item.partition(" ")[2].strip("()") for item in self.loose})
            parts.append(
                f"key columns that compare ids loosely ({', '.join(found)}: 'ALICE' finds "
                "alice's sessions and state)"
            )
        if self.missing_foreign_keys:
            parts.append(
                "events without their foreign key to sessions (an unfinished key-collation upgrade)"
            )
        return " and ".join(parts)


def _columns(conn: Connection, tables: list[str]) -> dict[tuple[str, str], tuple[str | None, int]]:
    """(table, column) -> (collation, length) of the key columns of ``tables``."""
    query = text(
        "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME, CHARACTER_MAXIMUM_LENGTH "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME IN :tables"
    ).bindparams(bindparam("tables", expanding=True))
    return {
        (str(row[0]), str(row[1])): (row[2], int(row[3] or 0))
        for row in conn.execute(query, {"tables": tables})
        if str(row[1]) in KEY_COLUMNS.get(str(row[0]), ())
    }


def _innodb(conn: Connection, table: str) -> bool:
    engine = conn.execute(
        text(
            "SELECT ENGINE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table"
        ),
        {"table": table},
    ).scalar()
    return str(engine or "").lower() == "innodb"


def _session_fks(conn: Connection, table: str) -> list[Any]:
    return [
        fk
        for fk in inspect(conn).get_foreign_keys(table)
        if fk.get("referred_table") == "sessions" and fk.get("name")
    ]


def session_key_collation(conn: Connection) -> str | None:
    """The collation of ``sessions.app_name`` on MySQL/MariaDB: a new child table must share it."""
    value = conn.execute(
        text(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = 'sessions' AND COLUMN_NAME = 'app_name'"
        )
    ).scalar()
    return str(value) if value else None


def find_key_problems(conn: Connection, tables: frozenset[str]) -> KeyProblems:
    """The key columns of ``conn``'s database that do not compare exactly (MySQL/MariaDB only)."""
    if conn.dialect.name not in MYSQL_FAMILY:
        return KeyProblems()
    present = [name for name in KEY_COLUMNS if name in tables]
    if not present:
        return KeyProblems()
    columns = _columns(conn, present)
    loose = []
    for table in present:
        for column in KEY_COLUMNS[table]:
            found = columns.get((table, column))
            if found is not None and not compares_exactly(found[0], conn.dialect):
                loose.append(f"{table}.{column} ({found[0]})")
    missing = tuple(
        table
        for table in _CHILDREN
        if table in present
        and "sessions" in present
        and _innodb(conn, table)
        and _innodb(conn, "sessions")
        and not _session_fks(conn, table)
    )
    return KeyProblems(
        loose=tuple(loose),
        missing_foreign_keys=missing,
        collation=exact_collation(conn.dialect),
    )


def make_keys_exact(conn: Connection, tables: frozenset[str]) -> list[str]:
    """Gives every loose key column the binary NO PAD collation; returns the columns changed."""
    problems = find_key_problems(conn, tables)
    if not problems:
        return []
    collation = exact_collation(conn.dialect)
    quote = conn.dialect.identifier_preparer.quote
    present = [name for name in KEY_COLUMNS if name in tables]
    columns = _columns(conn, present)

    def loose(table: str) -> list[str]:
        return [
            column
            for column in KEY_COLUMNS[table]
            if (table, column) in columns
            and not compares_exactly(columns[(table, column)][0], conn.dialect)
        ]

    # A loosely matched child row gets its session's spelling, so the foreign key holds under
    # the exact collation. Only needed while both sides are still loose (the first run).
    if "sessions" in present and len(loose("sessions")) == len(_PARENT_KEYS):
        for child in _CHILDREN:
            if child in present and len(loose(child)) == len(KEY_COLUMNS[child]):
                _respell_children(conn, child)

    # (name, ON DELETE rule) of each child's foreign key; a missing one is google-adk's.
    foreign_keys: dict[str, tuple[str | None, str]] = {}
    for child in _CHILDREN:
        if (
            child in present
            and "sessions" in present
            and _innodb(conn, child)
            and _innodb(conn, "sessions")
        ):
            found = _session_fks(conn, child)
            rule = (found[0].get("options") or {}).get("ondelete") if found else "CASCADE"
            foreign_keys[child] = (found[0].get("name") if found else None, str(rule or ""))

    changed: list[str] = []
    # Children first: a column in a foreign key cannot change while the key exists, so each
    # child drops its key in the same statement that changes its columns.
    order = [t for t in _CHILDREN if t in present] + [t for t in present if t not in _CHILDREN]
    for table in order:
        targets = loose(table)
        clauses = []
        if table in foreign_keys and (targets or loose("sessions")):
            clauses += [f"DROP FOREIGN KEY {quote(fk['name'])}" for fk in _session_fks(conn, table)]
        for column in targets:
            length = columns[(table, column)][1] or 128
            clauses.append(
                f"MODIFY {quote(column)} VARCHAR({length}) CHARACTER SET utf8mb4 "
                f"COLLATE {collation} NOT NULL"
            )
            changed.append(f"{table}.{column}")
        if clauses:
            conn.execute(text(f"ALTER TABLE {quote(table)} {', '.join(clauses)}"))
    for child, (name, ondelete) in foreign_keys.items():
        if _session_fks(conn, child):
            continue
        constraint = f"CONSTRAINT {quote(name)} " if name else ""
        on_delete = f" ON DELETE {ondelete}" if ondelete else ""
        conn.execute(
            text(
                f"ALTER TABLE {quote(child)} ADD {constraint}FOREIGN KEY "
                f"({', '.join(_CHILD_KEYS)}) REFERENCES sessions ({', '.join(_PARENT_KEYS)})"
                f"{on_delete}"
            )
        )
    # Tables left out while sessions compared loosely (a new child's foreign key needs the
    # same collation as its parent) are created now.
    metadata.create_all(conn, checkfirst=True)
    if changed:
        logger.info("Key columns now compare exactly (%s): %s", collation, ", ".join(changed))
    return changed


def _respell_children(conn: Connection, child: str) -> None:
    same = " AND ".join(f"c.{c} = s.{p}" for c, p in zip(_CHILD_KEYS, _PARENT_KEYS, strict=True))
    differs = " OR ".join(
        f"CAST(c.{c} AS BINARY) <> CAST(s.{p} AS BINARY)"
        for c, p in zip(_CHILD_KEYS, _PARENT_KEYS, strict=True)
    )
    assign = ", ".join(f"c.{c} = s.{p}" for c, p in zip(_CHILD_KEYS, _PARENT_KEYS, strict=True))
    result = conn.execute(
        text(f"UPDATE {child} c JOIN sessions s ON {same} SET {assign} WHERE {differs}")
    )
    if result.rowcount:
        logger.info(
            "%d %s row(s) now spell their session's ids as the session does.",
            result.rowcount,
            child,
        )
