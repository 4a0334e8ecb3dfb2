"""Errors raised by openadk.

The tree::

    Exception
    ├── AlreadyExistsError            a session id that is already taken (exist_ok=False)
    └── OpenAdkError                  base of openadk's own errors
        └── StorageError              the backing store failed (driver error, chained)
            └── CorruptDataError      a stored row that cannot be parsed (names table and key)
    ValueError
    ├── SessionNotFoundError          append/run on a session that does not exist
    ├── InvocationNotFoundError       rewind to an invocation the session does not have
    └── StaleSessionError             the handle is older than what storage holds
    TypeError
    └── StateSchemaError              a state write that does not fit the declared schema

`AlreadyExistsError`, `SessionNotFoundError` and `StaleSessionError` keep google-adk's base classes
and default messages, so code that catches google-adk's errors keeps working.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "CorruptDataError",
    "InvocationNotFoundError",
    "OpenAdkError",
    "SessionNotFoundError",
    "StaleSessionError",
    "StateSchemaError",
    "StorageError",
]

STALE_SESSION_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)


class OpenAdkError(Exception):
    """Base class of errors that only openadk raises."""


class StorageError(OpenAdkError):
    """The backing store failed; the original driver error is chained as ``__cause__``."""


class CorruptDataError(StorageError):
    """A stored row that cannot be parsed: written by another tool, or edited by hand.

    Retrying does not help; fix or delete the row. The parse error is chained as ``__cause__``.

    Attributes:
        table: The table the row is in, e.g. ``"events"``.
        key: The row's key columns and values, e.g. ``{"app_name": ..., "id": ...}``.
    """

    def __init__(self, message: str, *, table: str, key: dict[str, str]) -> None:
        super().__init__(message)
        self.table = table
        self.key = dict(key)


class AlreadyExistsError(Exception):
    """A resource with the requested id already exists.

    Attributes:
        message: The error message.
    """

    def __init__(self, message: str = "The resource already exists.") -> None:
        self.message = message
        super().__init__(message)


class SessionNotFoundError(ValueError):
    """The session does not exist (or was deleted)."""

    def __init__(self, message: str = "Session not found.") -> None:
        self.message = message
        super().__init__(message)


class StaleSessionError(ValueError):
    """The session handle is older than the stored session.

    Raised by ``append_event`` when another writer changed the session after the handle was read.
    Reload the session with ``get_session`` and append again, or construct the service with
    ``on_stale="merge"`` to append on top of the latest state instead.
    """

    def __init__(self, message: str = STALE_SESSION_MESSAGE) -> None:
        self.message = message
        super().__init__(message)


class StateSchemaError(TypeError):
    """A state write does not match the schema given to `State`."""


class InvocationNotFoundError(ValueError):
    """`Runner.rewind_async` was given an invocation id the session has no event of.

    A ValueError, like google-adk's (which is also its ``NotFoundError``).
    """
