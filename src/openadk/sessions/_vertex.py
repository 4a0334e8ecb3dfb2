"""`VertexAiSessionService`: sessions in Vertex AI Agent Engine, or in an `openadk serve` server.

Both speak the Agent Engine Sessions REST API (adk-compat.md §6). This module also holds the wire
format the server shares with the client: RFC 3339 times, and the mapping between `Event` and the
API's ``SessionEvent``. httpx and google-auth are imported only when a service is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import datetime
import decimal
import json
import logging
import math
import os
import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from openadk.errors import (
    AlreadyExistsError,
    CorruptDataError,
    SessionNotFoundError,
    StaleSessionError,
    StorageError,
)
from openadk.events import Event, EventActions
from openadk.sessions._base import (
    AppendOutcome,
    AppendPlan,
    BaseSessionService,
    EventKey,
    OnStale,
    PageKey,
    ScopedDelta,
    SessionFilter,
    encode_page_token,
    sort_key,
)
from openadk.sessions._metadata import (
    SessionMetadata,
    Unset,
    check_display_name,
    check_labels,
)
from openadk.sessions._session import (
    GetSessionConfig,
    ListEventsResponse,
    ListSessionsResponse,
    SearchEventsResponse,
    SearchHit,
    Session,
)
from openadk.sessions._state import State

if TYPE_CHECKING:  # pragma: no cover
    import httpx
    from google.auth.credentials import Credentials

__all__ = ["VertexAiSessionService"]

logger = logging.getLogger(__name__)

# Extension headers: what openadk's server adds to the API. A client sends them only to an
# ``api_endpoint``, and reads them only when present, so against Google nothing changes.
HEADER_SERVER = "x-openadk-server"
"""Response: the server is openadk's (value: its version)."""
HEADER_REVISION = "x-openadk-revision"
"""Response: the session's revision marker after the request (percent-encoded)."""
HEADER_IF_REVISION = "x-openadk-if-revision"
"""appendEvent: refuse (409 ABORTED) unless the session is still at this revision."""
HEADER_LAST_EVENT_ID = "x-openadk-last-event-id"
"""appendEvent: refuse unless the session's last event has this id ("" = no events)."""
HEADER_USER_ID = "x-openadk-user-id"
"""Session requests: refuse (403) a session of another user."""
HEADER_EXIST_OK = "x-openadk-exist-ok"
"""create: resume an existing session of the same user, merging the given state."""
HEADER_RESUMED = "x-openadk-resumed"
"""create response: the session existed and was resumed."""
HEADER_EVENT_TIMESTAMP = "x-openadk-event-timestamp"
"""appendEvent response: the stored event's timestamp (float seconds)."""
HEADER_UPDATE_TIME = "x-openadk-update-time"
"""appendEvent response: the session's new last update time (float seconds)."""
HEADER_DUPLICATE = "x-openadk-duplicate"
"""appendEvent response: "1" when the same event was already stored (nothing changed)."""

ENDPOINT_ENV = "OPENADK_VERTEX_API_ENDPOINT"
"""The default ``api_endpoint``: lets unchanged code talk to an ``openadk serve``."""
API_KEY_ENV = "OPENADK_API_KEY"
"""The default key sent to an ``api_endpoint`` (the same variable ``openadk serve`` reads)."""

OWNER_MISMATCH_REASON = "SESSION_OWNER_MISMATCH"
"""`google.rpc.ErrorInfo` reason of the 403 for another user's session."""

COMPACTION_KEY = "_compaction"
USAGE_METADATA_KEY = "_usage_metadata"

_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_RESOURCE_NAME = re.compile(
    r"^projects/([a-zA-Z0-9-_]+)/locations/([a-zA-Z0-9-_]+)/reasoningEngines/(\d+)$"
)
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_SELF_HOSTED_ENGINE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_EVENT_PAGE = 1000
_SESSION_PAGE = 100

# Options of one create_session call (ttl, expireTime, ...), passed past the base class.
_CREATE_OPTIONS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "openadk_vertex_create_options", default=None
)

# Times ---------------------------------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)
_NANO = decimal.Decimal("1e-9")


_MIN_TIME = -62135596800.0  # 0001-01-01T00:00:00Z
_MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z


def format_time(timestamp: float, *, floor: bool = False, clamp: bool = False) -> str:
    """Unix seconds as RFC 3339 UTC with nanoseconds, e.g. ``2023-11-14T22:13:20.123456789Z``.

    Nanoseconds keep a float of today's Unix time exact: `parse_time` gives the same float back.

    Args:
        timestamp: Unix seconds.
        floor: Round down to the nanosecond (for ``>=`` filters) instead of to the nearest.
        clamp: Write a time outside years 1-9999 as the nearest end instead of raising.

    Raises:
        ValueError: ``timestamp`` is not finite or outside years 1-9999 (without ``clamp``).
    """
    if not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
        if not clamp:
            raise ValueError(f"timestamp must be a finite number, got {timestamp!r}.")
        timestamp = 0.0
    if clamp:
        timestamp = min(max(timestamp, _MIN_TIME), _MAX_TIME)
    rounding = decimal.ROUND_FLOOR if floor else decimal.ROUND_HALF_EVEN
    exact = decimal.Decimal(timestamp).quantize(_NANO, rounding=rounding)
    seconds = int(exact.to_integral_value(rounding=decimal.ROUND_FLOOR))
    nanos = int((exact - seconds) * 1_000_000_000)
    try:
        when = _EPOCH + datetime.timedelta(seconds=seconds)
    except OverflowError as exc:
        raise ValueError(f"timestamp {timestamp!r} is outside years 1-9999.") from exc
    text = f"{when.year:04d}-{when:%m-%dT%H:%M:%S}"
    return f"{text}.{nanos:09d}Z" if nanos else f"{text}Z"


def parse_time(text: str) -> float:
    """An RFC 3339 time (any offset, up to nanoseconds) as Unix seconds.

    Raises:
        ValueError: ``text`` is not an RFC 3339 date-time.
    """
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 time such as '2024-01-02T03:04:05.5Z'.")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7) or "", match.group(8)
    try:
        when = datetime.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date-time: {exc}.") from exc
    whole = (when - _EPOCH.replace(tzinfo=None)) // datetime.timedelta(seconds=1)
    whole += second - min(second, 59)  # a leap second 60 counts as the next second
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        whole -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return whole + nanos / 1_000_000_000


# Events on the wire --------------------------------------------------------------------------


def _drop_part_metadata(content: Any) -> None:
    # The Agent Engine API rejects Part.part_metadata (a Gemini Developer API field).
    if isinstance(content, dict):
        for part in content.get("parts") or []:
            if isinstance(part, dict):
                part.pop("partMetadata", None)
                part.pop("part_metadata", None)


def event_to_api(event: Event, *, name: str | None = None, clamp: bool = False) -> dict[str, Any]:
    """An `Event` as the API's ``SessionEvent`` JSON, with the whole event in ``rawEvent``.

    The named fields are those google-adk 2.13 fills; ``rawEvent`` (camelCase, nulls left out)
    carries everything, so the event round-trips exactly through a server that keeps it.

    Raises:
        ValueError: The event's timestamp cannot be written as an RFC 3339 time.
    """
    raw: dict[str, Any] = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    _drop_part_metadata(raw.get("content"))
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    body["author"] = event.author
    body["invocationId"] = event.invocation_id
    body["timestamp"] = format_time(event.timestamp, clamp=clamp)
    if "content" in raw:
        body["content"] = copy.deepcopy(raw["content"])
    raw_actions = raw.get("actions", {})
    actions = {
        "skipSummarization": raw_actions.get("skipSummarization"),
        "stateDelta": raw_actions.get("stateDelta", {}),
        "artifactDelta": raw_actions.get("artifactDelta", {}),
        "transferAgent": raw_actions.get("transferToAgent"),
        "escalate": raw_actions.get("escalate"),
        "requestedAuthConfigs": raw_actions.get("requestedAuthConfigs", {}),
    }
    body["actions"] = copy.deepcopy({k: v for k, v in actions.items() if v is not None})
    if event.error_code:
        body["errorCode"] = event.error_code
    if event.error_message:
        body["errorMessage"] = event.error_message
    metadata: dict[str, Any] = {}
    for key in (
        "partial",
        "turnComplete",
        "interrupted",
        "branch",
        "customMetadata",
        "longRunningToolIds",
        "groundingMetadata",
        "inputTranscription",
        "outputTranscription",
    ):
        if key in raw:
            metadata[key] = copy.deepcopy(raw[key])
    if event.actions.compaction is not None or event.usage_metadata is not None:
        custom = dict(metadata.get("customMetadata") or {})
        if event.actions.compaction is not None:
            custom[COMPACTION_KEY] = event.actions.compaction.model_dump(
                mode="json", exclude_none=True
            )
        if event.usage_metadata is not None:
            custom[USAGE_METADATA_KEY] = event.usage_metadata.model_dump(
                mode="json", exclude_none=True
            )
        metadata["customMetadata"] = custom
    if metadata:
        body["eventMetadata"] = metadata
    body["rawEvent"] = raw
    return body


def _pick(data: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = data.get(camel)
    return data.get(snake) if value is None else value


def _finite_seconds(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _read_event(body: Any) -> Event:
    """A listed ``SessionEvent`` as an `Event`; one the server should not have sent is named."""
    name = str(body.get("name") or "") if isinstance(body, Mapping) else ""
    try:
        if not isinstance(body, Mapping):
            raise TypeError(f"the event is a {type(body).__name__}, not a JSON object")
        return event_from_api(body)
    except (TypeError, ValueError) as error:
        lines = [line.strip() for line in str(error).splitlines()[:3] if line.strip()]
        raise CorruptDataError(
            f"Cannot read event {name!r} from the server: it is not a valid event "
            f"({'; '.join(lines)}).",
            table="sessionEvents",
            key={"name": name},
        ) from error


def event_from_api(body: Mapping[str, Any]) -> Event:
    """A ``SessionEvent`` JSON (camelCase or snake_case) as an `Event`.

    With a ``rawEvent``, the event is that, with ``author`` and ``invocationId`` from the top
    level; its own float ``timestamp`` is kept when the API's RFC 3339 one is the same instant
    to within 2 µs (the API's may be rounded), else the API's wins. Without one, the named fields
    are mapped as google-adk maps them and every other field is lost.

    Raises:
        ValueError: The event is not valid (pydantic's ``ValidationError`` is a ValueError), or
            its ``rawEvent.timestamp`` is a number that is not finite (NaN, or too large).
    """
    stamp_text = body.get("timestamp")
    api_time = parse_time(stamp_text) if stamp_text is not None else None
    name = body.get("name")
    name_id = name.rsplit("/", 1)[-1] if isinstance(name, str) and name else None
    author = body.get("author")
    invocation_id = _pick(body, "invocationId", "invocation_id")
    raw = _pick(body, "rawEvent", "raw_event")
    if isinstance(raw, Mapping) and raw:
        data = copy.deepcopy(dict(raw))
        if invocation_id is not None:
            data.pop("invocation_id", None)
            data["invocationId"] = invocation_id
        if author is not None:
            data["author"] = author
        own = data.get("timestamp")
        number = isinstance(own, (int, float)) and not isinstance(own, bool)
        if isinstance(own, (int, float)) and number and not _finite_seconds(own):
            shown = repr(own) if len(repr(own)) <= 40 else repr(own)[:30] + "..."
            raise ValueError(
                f"rawEvent.timestamp is {shown}, not a finite number of Unix seconds; fix it "
                f"or leave it out (the event's RFC 3339 timestamp is then used)."
            )
        if api_time is not None and (
            not isinstance(own, (int, float)) or not number or abs(own - api_time) > 2e-6
        ):
            data["timestamp"] = api_time
        if not data.get("id") and name_id:
            data["id"] = name_id
        # Named fields a partial rawEvent lacks are taken from the top level.
        for camel, snake in (
            ("content", "content"),
            ("errorCode", "error_code"),
            ("errorMessage", "error_message"),
        ):
            value = _pick(body, camel, snake)
            if value is not None and _pick(data, camel, snake) is None:
                data[camel] = copy.deepcopy(value)
        return Event.model_validate(data)

    actions_in = body.get("actions") or {}
    metadata = _pick(body, "eventMetadata", "event_metadata") or {}
    custom = _pick(metadata, "customMetadata", "custom_metadata")
    compaction = usage = None
    if isinstance(custom, Mapping) and (COMPACTION_KEY in custom or USAGE_METADATA_KEY in custom):
        custom = dict(custom)
        compaction = custom.pop(COMPACTION_KEY, None)
        usage = custom.pop(USAGE_METADATA_KEY, None)
        custom = custom or None
    actions: dict[str, Any] = {}
    for camel, snake, target in (
        ("skipSummarization", "skip_summarization", "skip_summarization"),
        ("stateDelta", "state_delta", "state_delta"),
        ("artifactDelta", "artifact_delta", "artifact_delta"),
        ("transferAgent", "transfer_agent", "transfer_to_agent"),
        ("escalate", "escalate", "escalate"),
        ("requestedAuthConfigs", "requested_auth_configs", "requested_auth_configs"),
    ):
        value = _pick(actions_in, camel, snake)
        if value is not None:
            actions[target] = value
    if compaction is not None:
        actions["compaction"] = compaction
    data = {
        "invocation_id": invocation_id or "",
        "author": author or "",
        "actions": EventActions.model_validate(actions),
        "content": body.get("content"),
        "error_code": _pick(body, "errorCode", "error_code"),
        "error_message": _pick(body, "errorMessage", "error_message"),
        "partial": metadata.get("partial"),
        "turn_complete": _pick(metadata, "turnComplete", "turn_complete"),
        "interrupted": metadata.get("interrupted"),
        "branch": metadata.get("branch"),
        "custom_metadata": custom,
        "grounding_metadata": _pick(metadata, "groundingMetadata", "grounding_metadata"),
        "input_transcription": _pick(metadata, "inputTranscription", "input_transcription"),
        "output_transcription": _pick(metadata, "outputTranscription", "output_transcription"),
        "usage_metadata": usage,
    }
    ids = _pick(metadata, "longRunningToolIds", "long_running_tool_ids")
    if ids:
        data["long_running_tool_ids"] = set(ids)
    if name_id:
        data["id"] = name_id
    if api_time is not None:
        data["timestamp"] = api_time
    return Event.model_validate({k: v for k, v in data.items() if v is not None})


def quote_filter_literal(value: str) -> str:
    r"""A filter string literal: ``"`` and ``\\`` escaped with a backslash, as google-adk does."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unsplit(state: ScopedDelta) -> dict[str, Any]:
    full = dict(state.session)
    full.update({State.APP_PREFIX + k: v for k, v in state.app.items()})
    full.update({State.USER_PREFIX + k: v for k, v in state.user.items()})
    return full


def _create_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """google-adk's extra ``create_session`` arguments as Session JSON fields."""
    if kwargs.get("ttl") is not None and kwargs.get("expire_time") is not None:
        raise ValueError("Cannot specify both 'ttl' and 'expire_time' simultaneously.")
    options: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if key == "ttl":
            if isinstance(value, datetime.timedelta):
                value = f"{value.total_seconds():g}s"
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = f"{value:g}s"
            options["ttl"] = value
        elif key == "expire_time":
            if isinstance(value, datetime.datetime):
                if value.tzinfo is None:
                    raise ValueError("expire_time must be timezone-aware.")
                value = format_time(value.timestamp())
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = format_time(float(value))
            options["expireTime"] = value
        elif key == "display_name":
            options["displayName"] = check_display_name(value)
        elif key == "labels":
            options["labels"] = check_labels(value)
        else:
            raise TypeError(
                f"create_session() got an unexpected keyword argument {key!r}; "
                "VertexAiSessionService accepts ttl, expire_time, display_name and labels."
            )
    return options


class _ApiError:
    """The parts of a Google API JSON error response."""

    def __init__(self, response: httpx.Response) -> None:
        self.code = response.status_code
        self.status = ""
        self.message = response.reason_phrase or ""
        self.reason = ""
        try:
            error = response.json().get("error", {})
        except (ValueError, AttributeError):
            error = {}
        if isinstance(error, dict):
            self.status = str(error.get("status") or "")
            self.message = str(error.get("message") or self.message)
            for detail in error.get("details") or []:
                if isinstance(detail, dict) and detail.get("reason"):
                    self.reason = str(detail["reason"])

    def describe(self, action: str) -> str:
        status = f" {self.status}" if self.status else ""
        return (
            f"Agent Engine Sessions API: {action} failed with HTTP {self.code}{status}: "
            f"{self.message}"
        )

    def exception(self, action: str) -> Exception:
        text = self.describe(action)
        if self.code in (401, 403):
            return PermissionError(text)
        if self.code in (400, 404, 409, 413) or self.status in (
            "INVALID_ARGUMENT",
            "FAILED_PRECONDITION",
            "OUT_OF_RANGE",
        ):
            return ValueError(text)
        return StorageError(text)


class VertexAiSessionService(BaseSessionService):
    """Sessions stored through the Agent Engine Sessions REST API.

    Titles and labels are the API's ``displayName`` and ``labels``; `update_session` is a PATCH,
    and the label and update-time filters of `list_sessions` are sent as the API's ``filter``.

    Talks to Vertex AI Agent Engine (Google Application Default Credentials, or an Express Mode
    API key) or, with ``api_endpoint``, to a self-hosted ``openadk serve``. Against an openadk
    server every contract of `BaseSessionService` holds, stale-handle detection included;
    against Google, behaviour follows google-adk 2.13's client (no stale detection, no
    ``get_user_state``).

    An ``app_name`` names the reasoning engine: ``agent_engine_id`` when configured, else an
    all-digit ``app_name``, else the last part of a full
    ``projects/P/locations/L/reasoningEngines/E`` name. With ``api_endpoint``, any app name of
    letters, digits, ``_`` and ``-`` (up to 128) is used as the engine id too, since openadk's
    server maps each engine id to the app of that name.

    Session ids must match ``^[A-Za-z0-9_-]+$``; a full session resource name is reduced to its
    last part. A session of another user raises ``ValueError`` (as google-adk does), where other
    backends return None. HTTP 429 and 503 are retried with exponential backoff.
    """

    # search and fork are openadk server extensions; Google's API answers them with 404.
    capabilities = frozenset({"metadata", "search", "fork"})

    def __init__(
        self,
        project: str | None = None,
        location: str | None = None,
        agent_engine_id: str | None = None,
        *,
        project_id: str | None = None,
        api_endpoint: str | None = None,
        credentials: Credentials | None = None,
        express_mode_api_key: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        on_stale: OnStale = "error",
        api_version: str = "v1beta1",
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        timeout: float = 30.0,
        operation_timeout: float = 60.0,
    ) -> None:
        """Configures the service; nothing is contacted until the first call.

        Args:
            project: The Google Cloud project (default: ``$GOOGLE_CLOUD_PROJECT``, then ADC's).
            location: The region, e.g. ``us-central1`` (default: ``$GOOGLE_CLOUD_LOCATION``).
            agent_engine_id: The reasoning engine every app name maps to.
            project_id: Another name for ``project`` (the user's document uses it).
            api_endpoint: Base URL of an ``openadk serve`` server (or another endpoint), e.g.
                ``http://127.0.0.1:8080`` (default: ``$OPENADK_VERTEX_API_ENDPOINT``).
                Application Default Credentials are never looked up for it; without a key or
                credentials, ``$OPENADK_API_KEY`` is sent as the key.
            credentials: google-auth credentials to send as a bearer token.
            express_mode_api_key: An API key, sent as ``x-goog-api-key`` (also the key of an
                ``openadk serve --api-key``). Without ``api_endpoint`` and when
                ``GOOGLE_GENAI_USE_ENTERPRISE`` is on, ``$GOOGLE_API_KEY`` is the default.
            http_client: An ``httpx.AsyncClient`` to send requests with (the caller closes it),
                e.g. one on ``httpx.ASGITransport(app)`` for tests.
            on_stale: ``"error"`` makes an openadk server refuse a stale handle
                (`StaleSessionError`); ``"merge"`` appends on top of the latest state.
            api_version: ``v1beta1`` (default) or ``v1``.
            max_retries: How many times HTTP 429/503 and connection failures are retried.
            retry_backoff: The first retry delay in seconds; it doubles each time (with jitter).
            timeout: Seconds per HTTP request.
            operation_timeout: Seconds to wait for a long-running operation to finish.

        Raises:
            ImportError: httpx (or google-auth, when needed) is not installed.
            ValueError: Conflicting arguments.
        """
        super().__init__(on_stale=on_stale)
        try:
            import httpx  # noqa: F401
        except ImportError as exc:  # pragma: no cover - httpx comes with google-genai
            raise ImportError(
                'VertexAiSessionService needs httpx: pip install "openadk[vertex]"'
            ) from exc
        if project is not None and project_id is not None and project != project_id:
            raise ValueError("Pass either project or project_id, not two different values.")
        project = project if project is not None else project_id
        if (project or location) and express_mode_api_key:
            raise ValueError(
                "Cannot specify project or location and express_mode_api_key. Either use "
                "project and location, or just the express_mode_api_key."
            )
        if api_version not in ("v1beta1", "v1"):
            raise ValueError(f"api_version must be 'v1beta1' or 'v1', got {api_version!r}.")
        if credentials is not None and express_mode_api_key:
            raise ValueError("Pass either credentials or express_mode_api_key, not both.")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative int, got {max_retries!r}.")
        if api_endpoint is None:
            api_endpoint = os.environ.get(ENDPOINT_ENV) or None
        api_key = express_mode_api_key
        if api_key is None and api_endpoint is not None and credentials is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        if api_key is None and api_endpoint is None and _enterprise_mode():
            api_key = os.environ.get("GOOGLE_API_KEY") or None
            if api_key and (project or location):
                api_key = None  # explicit project/location win over the environment's key
        self._project = project or (
            None if api_key else os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        )
        self._location = location or (
            None if api_key else os.environ.get("GOOGLE_CLOUD_LOCATION") or None
        )
        self._agent_engine_id = agent_engine_id
        self._api_endpoint = api_endpoint.rstrip("/") if api_endpoint else None
        if self._api_endpoint is not None and "://" not in self._api_endpoint:
            self._api_endpoint = "https://" + self._api_endpoint
        self._credentials = credentials
        self._api_key = api_key
        self._client = http_client
        self._owns_client = http_client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._api_version = api_version
        self._max_retries = max_retries
        self._retry_backoff = retry_backoff
        self._timeout = timeout
        self._operation_timeout = operation_timeout
        self._openadk_server = False
        self._auth_lock: asyncio.Lock | None = None
        self._auth_lock_loop: asyncio.AbstractEventLoop | None = None
        self._adc_loaded = False

    def __repr__(self) -> str:
        where = self._api_endpoint or "Vertex AI"
        return f"VertexAiSessionService({where!r})"

    # Plumbing ----------------------------------------------------------------------------------

    @property
    def _self_hosted(self) -> bool:
        return self._api_endpoint is not None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._owns_client and self._client is not None and self._client_loop is not loop:
            # A client's connections belong to the loop that opened them (asyncio.run twice).
            self._client = None
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._client_loop = loop
        return self._client

    async def close(self) -> None:
        """Closes the HTTP client the service made (not one the caller passed)."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _load_adc(self) -> None:
        try:
            import google.auth
        except ImportError as exc:  # pragma: no cover - google-auth comes with google-genai
            raise ImportError(
                'Application Default Credentials need google-auth: pip install "openadk[vertex]"'
            ) from exc
        credentials, project = await asyncio.to_thread(
            google.auth.default,
            scopes=list(_SCOPES),
        )
        self._credentials = credentials
        if not self._project:
            self._project = project
        self._adc_loaded = True

    async def _auth_headers(self) -> dict[str, str]:
        if self._api_key:
            return {"x-goog-api-key": self._api_key}
        if self._credentials is None and (self._self_hosted or self._adc_loaded):
            return {}
        loop = asyncio.get_running_loop()
        if self._auth_lock is None or self._auth_lock_loop is not loop:
            self._auth_lock, self._auth_lock_loop = asyncio.Lock(), loop
        async with self._auth_lock:
            if self._credentials is None:
                await self._load_adc()
            credentials = self._credentials
            if credentials is None:  # pragma: no cover - _load_adc sets it or raises
                raise StorageError("Application Default Credentials gave no credentials.")
            if not credentials.valid:
                await asyncio.to_thread(_refresh, credentials)
        headers: dict[str, str] = {}
        credentials.apply(headers)  # type: ignore[no-untyped-call]
        return headers

    async def _root(self) -> str:
        if self._api_endpoint is not None:
            return f"{self._api_endpoint}/{self._api_version}"
        if self._api_key:
            return f"https://aiplatform.googleapis.com/{self._api_version}"
        if not self._location:
            raise ValueError(
                "VertexAiSessionService needs a location to reach Vertex AI: pass location= "
                "or set GOOGLE_CLOUD_LOCATION."
            )
        return f"https://{self._location}-aiplatform.googleapis.com/{self._api_version}"

    async def _parent(self, engine: str) -> str:
        if not self._self_hosted and not self._api_key and not self._project:
            await self._auth_headers()  # ADC may name the project
            if not self._project:
                raise ValueError(
                    "VertexAiSessionService needs a project: pass project= (or project_id=) "
                    "or set GOOGLE_CLOUD_PROJECT."
                )
        if self._project and self._location:
            return f"projects/{self._project}/locations/{self._location}/reasoningEngines/{engine}"
        return f"reasoningEngines/{engine}"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Sends one request, retrying 429/503 and failed connections with backoff."""
        import httpx

        url = f"{await self._root()}/{path}"
        idempotent = method in ("GET", "DELETE")
        attempt = 0
        while True:
            request_headers = {**(await self._auth_headers()), **(headers or {})}
            try:
                response = await self._http().request(
                    method,
                    url,
                    params={k: v for k, v in (params or {}).items() if v is not None},
                    content=None if body is None else _dumps(body),
                    headers={**request_headers, "content-type": "application/json"}
                    if body is not None
                    else request_headers,
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                retry = idempotent or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if retry and attempt < self._max_retries:
                    await self._sleep(attempt, None)
                    attempt += 1
                    continue
                raise StorageError(
                    f"Agent Engine Sessions API: {method} {url} failed after {attempt + 1} "
                    f"attempt(s): {type(exc).__name__}: {exc}"
                ) from exc
            if response.headers.get(HEADER_SERVER):
                self._openadk_server = True
            if response.status_code in (429, 503) and attempt < self._max_retries:
                await self._sleep(attempt, response.headers.get("retry-after"))
                attempt += 1
                continue
            return response

    async def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self._retry_backoff * (2**attempt) * (0.5 + random.random())
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), 30.0))
        await asyncio.sleep(delay)

    async def _wait(self, operation: dict[str, Any], action: str) -> dict[str, Any]:
        """Polls a long-running operation until done, for at most ``operation_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._operation_timeout
        delay = 0.25
        while not operation.get("done"):
            name = operation.get("name")
            if not name:
                raise StorageError(f"Agent Engine Sessions API: {action} returned no operation.")
            if loop.time() + delay > deadline:
                raise TimeoutError(
                    f"Agent Engine Sessions API: {action}: operation {name} did not finish "
                    f"within {self._operation_timeout:g} s."
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            response = await self._call("GET", name)
            if response.status_code != 200:
                raise _ApiError(response).exception(f"{action} (polling {name})")
            operation = response.json()
        error = operation.get("error")
        if error:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else error
            if code == 6:  # google.rpc.Code.ALREADY_EXISTS
                raise AlreadyExistsError(str(message))
            raise StorageError(f"Agent Engine Sessions API: {action} failed: {message}")
        return operation

    def _engine_id(self, app_name: str) -> str:
        if self._agent_engine_id:
            return self._agent_engine_id
        if app_name.isascii() and app_name.isdigit():
            return app_name
        match = _RESOURCE_NAME.fullmatch(app_name)
        if match:
            return match.group(3)
        if self._self_hosted and _SELF_HOSTED_ENGINE.fullmatch(app_name):
            return app_name
        raise ValueError(
            f"App name {app_name} is not valid. It should either be the full ReasoningEngine "
            "resource name, or the reasoning engine id."
        )

    @staticmethod
    def _short_id(session_id: str, engine: str) -> str:
        if "/" in session_id:
            parts = session_id.split("/")
            if len(parts) >= 2 and parts[-2] == "sessions":
                if len(parts) >= 4 and parts[-4] == "reasoningEngines" and parts[-3] != engine:
                    raise ValueError(
                        f"Session resource name mismatch: session belongs to reasoningEngine "
                        f"{parts[-3]!r}, but service is configured for {engine!r}."
                    )
                session_id = parts[-1]
        if not _SESSION_ID.fullmatch(session_id):
            raise ValueError(
                f"Invalid session_id {session_id!r}: must match {_SESSION_ID.pattern}."
            )
        return session_id

    def _user_headers(self, user_id: str) -> dict[str, str]:
        return {HEADER_USER_ID: quote(user_id, safe="")} if self._self_hosted else {}

    @staticmethod
    def _revision(response: httpx.Response) -> str | None:
        from urllib.parse import unquote

        value = response.headers.get(HEADER_REVISION)
        return None if value is None else unquote(value)

    @staticmethod
    def _not_owner(response: httpx.Response) -> bool:
        return response.status_code == 403 and _ApiError(response).reason == OWNER_MISMATCH_REASON

    def _session_from_api(
        self, body: Mapping[str, Any], app_name: str, marker: str | None
    ) -> Session:
        name = str(body.get("name") or "")
        update = body.get("updateTime") or body.get("update_time")
        state = body.get("sessionState") or body.get("session_state") or {}
        if not isinstance(state, dict):
            raise CorruptDataError(
                f"Cannot read session {name!r} from the server: its sessionState is a "
                f"{type(state).__name__}, not a JSON object.",
                table="sessions",
                key={"name": name},
            ) from TypeError(f"sessionState is a {type(state).__name__}")
        session = Session(
            id=name.rsplit("/", 1)[-1],
            app_name=app_name,
            user_id=str(body.get("userId") or body.get("user_id") or ""),
            state=dict(state),
            last_update_time=parse_time(update) if update else 0.0,
        )
        display_name = body.get("displayName")
        labels = body.get("labels")
        if isinstance(display_name, str):
            session.display_name = display_name
        if isinstance(labels, dict) and labels:
            session.labels = {str(k): str(v) for k, v in labels.items()}
        session._storage_update_marker = marker
        return session

    # Hooks -------------------------------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        exist_ok: bool = True,
        **kwargs: Any,
    ) -> Session:
        """Creates a session, or resumes the one with ``session_id``.

        As `BaseSessionService.create_session`, plus google-adk's extra arguments: ``ttl``
        (e.g. ``"7200s"``), ``expire_time`` (RFC 3339 or an aware datetime), ``display_name``
        and ``labels``.

        Raises:
            AlreadyExistsError: ``session_id`` exists and ``exist_ok`` is False, or it belongs
                to another user.
            ValueError: Both ``ttl`` and ``expire_time``, an invalid id, or a request the API
                refuses.
        """
        options = _create_options(kwargs)
        token = _CREATE_OPTIONS.set(options)
        try:
            return await super().create_session(
                app_name=app_name,
                user_id=user_id,
                state=state,
                session_id=session_id,
                exist_ok=exist_ok,
            )
        finally:
            _CREATE_OPTIONS.reset(token)

    async def _create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: ScopedDelta,
        exist_ok: bool,
        expire_time: float | None = None,
    ) -> Session:
        engine = self._engine_id(app_name)
        short = None if session_id is None else self._short_id(session_id, engine)
        full_state = _unsplit(state)
        body: dict[str, Any] = {"userId": user_id}
        if full_state:
            body["sessionState"] = full_state
        body.update(_CREATE_OPTIONS.get() or {})
        headers: dict[str, str] = {}
        if self._self_hosted and exist_ok and short is not None:
            headers[HEADER_EXIST_OK] = "true"
        parent = await self._parent(engine)
        response = await self._call(
            "POST", f"{parent}/sessions", params={"sessionId": short}, body=body, headers=headers
        )
        if response.status_code == 409 and short is not None:
            if not exist_ok:
                raise AlreadyExistsError(f"Session with id {short} already exists.")
            return await self._resume(app_name, user_id, short, full_state)
        if response.status_code != 200:
            raise _ApiError(response).exception("create session")
        marker = self._revision(response)
        resumed = response.headers.get(HEADER_RESUMED) == "1"
        try:
            operation = await self._wait(response.json(), "create session")
        except AlreadyExistsError:
            if short is None or not exist_ok:
                raise
            return await self._resume(app_name, user_id, short, full_state)
        resource = operation.get("response") or {}
        created_id = str(resource.get("name") or "").rsplit("/", 1)[-1] or short
        if resumed or marker is None or not resource.get("updateTime"):
            # A resumed session has events, and Google's operation response may lack fields.
            if not created_id:
                raise StorageError("Agent Engine Sessions API: create returned no session name.")
            got = await self._get_session(
                app_name=app_name,
                user_id=user_id,
                session_id=created_id,
                config=None if resumed else GetSessionConfig(num_recent_events=0),
            )
            if got is None:
                raise StorageError(
                    f"Agent Engine Sessions API: session {created_id} vanished after create."
                )
            return got
        return self._session_from_api(resource, app_name, marker)

    async def _resume(
        self, app_name: str, user_id: str, session_id: str, state: dict[str, Any]
    ) -> Session:
        """Resumes an existing session on a server without openadk's exist-ok extension."""
        try:
            session = await self._get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=None
            )
        except ValueError as exc:
            if "does not belong" not in str(exc):
                raise
            raise AlreadyExistsError(
                f"Session with id {session_id} already exists (it belongs to another user)."
            ) from exc
        if session is None:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.")
        if state:
            # The API changes state only through events: record the merge as one.
            await self.append_event(
                session,
                Event(
                    author="user",
                    invocation_id=f"e-{Event.new_id()}",
                    actions=EventActions(state_delta=state),
                ),
            )
        return session

    async def _session_name(self, app_name: str, session_id: str) -> tuple[str, str]:
        """The session's short id and its full resource name under the app's engine."""
        engine = self._engine_id(app_name)
        short = self._short_id(session_id, engine)
        return short, f"{await self._parent(engine)}/sessions/{short}"

    async def _get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None,
    ) -> Session | None:
        short, name = await self._session_name(app_name, session_id)
        headers = self._user_headers(user_id)
        # The session first, then its events: a handle is never newer than its events, so a
        # stale-handle check can only err on the safe side.
        response = await self._call("GET", name, headers=headers)
        if response.status_code == 404:
            return None
        if self._not_owner(response):
            raise ValueError(f"Session {short} does not belong to user {user_id}.")
        if response.status_code != 200:
            raise _ApiError(response).exception("get session")
        body = response.json()
        if body.get("userId") != user_id:
            raise ValueError(f"Session {short} does not belong to user {user_id}.")
        session = self._session_from_api(body, app_name, self._revision(response))
        if config is not None and config.num_recent_events == 0:
            return session
        after = None if config is None else config.after_timestamp
        events = await self._all_events(name, headers, after)
        if events is None:
            return None
        if after is not None:
            events = [e for e in events if e.timestamp >= after]
        if config is not None and config.num_recent_events is not None:
            events = events[max(0, len(events) - config.num_recent_events) :]
        session.events = events
        return session

    async def _all_events(
        self, name: str, headers: Mapping[str, str], after: float | None
    ) -> list[Event] | None:
        """Every event of the session (at or after ``after``); None when it is gone."""
        events: list[Event] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"pageSize": _EVENT_PAGE, "pageToken": token}
            if after is not None:
                params["filter"] = f'timestamp>="{format_time(after, floor=True)}"'
            response = await self._call("GET", f"{name}/events", params=params, headers=headers)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise _ApiError(response).exception("list events")
            page = response.json()
            events.extend(_read_event(e) for e in page.get("sessionEvents") or [])
            token = page.get("nextPageToken") or None
            if token is None or token in seen:
                return events
            seen.add(token)

    async def _list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int | None,
        after: PageKey | None,
        filters: SessionFilter | None = None,
    ) -> ListSessionsResponse:
        parent = await self._parent(self._engine_id(app_name))
        filter_ = _list_filter(user_id, filters)
        # An openadk server pages in the same order with the same tokens: pass them through.
        passthrough = self._openadk_server or (after is None and limit is not None)
        sessions: list[Session] = []
        token = encode_page_token(after) if passthrough and after is not None else None
        seen: set[str] = set()
        while True:
            size = _SESSION_PAGE
            if passthrough and limit is not None:
                size = min(size, limit - len(sessions))
            response = await self._call(
                "GET",
                f"{parent}/sessions",
                params={"filter": filter_, "pageSize": size, "pageToken": token},
            )
            if response.status_code != 200:
                raise _ApiError(response).exception("list sessions")
            page = response.json()
            found = [self._session_from_api(s, app_name, None) for s in page.get("sessions") or []]
            if filters:
                # The server filtered already; a server that ignored a term is caught here.
                found = [s for s in found if filters.matches(s.labels, s.last_update_time)]
            sessions.extend(found)
            token = page.get("nextPageToken") or None
            if passthrough and not self._openadk_server:
                passthrough = False  # not an openadk server: list everything, page here
                token = None
                sessions = []
                continue
            if token is None or token in seen:
                break
            seen.add(token)
            if passthrough and limit is not None and len(sessions) >= limit:
                return ListSessionsResponse(sessions=sessions, next_page_token=token)
        if passthrough:
            return ListSessionsResponse(sessions=sessions)
        sessions.sort(key=sort_key)
        if after is not None:
            sessions = [s for s in sessions if sort_key(s) > after]
        next_token = None
        if limit is not None and len(sessions) > limit:
            sessions = sessions[:limit]
            next_token = encode_page_token(sort_key(sessions[-1]))
        return ListSessionsResponse(sessions=sessions, next_page_token=next_token)

    async def _list_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        limit: int | None,
        after: EventKey | None,
    ) -> ListEventsResponse:
        short, name = await self._session_name(app_name, session_id)
        headers = self._user_headers(user_id)
        if not self._openadk_server:
            # Check existence and owner as get_session does (this also tells an openadk server).
            got = await self._get_session(
                app_name=app_name,
                user_id=user_id,
                session_id=short,
                config=GetSessionConfig(num_recent_events=0),
            )
            if got is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
        if not self._openadk_server:
            # Vertex AI's page tokens are its own: read every event and page here.
            since = None if after is None else after[0]
            events = await self._all_events(name, headers, since)
            if events is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            if after is not None:
                events = [e for e in events if (e.timestamp, e.id) > after]
            token = None
            if limit is not None and len(events) > limit:
                events = events[:limit]
                token = encode_page_token((events[-1].timestamp, events[-1].id, ""))
            return ListEventsResponse(events=events, next_page_token=token)
        # An openadk server pages in the same order with the same tokens: pass them through.
        params: dict[str, Any] = {
            "pageSize": _EVENT_PAGE if limit is None else min(limit, _EVENT_PAGE),
            "pageToken": None if after is None else encode_page_token((after[0], after[1], "")),
        }
        collected: list[Event] = []
        while True:
            response = await self._call("GET", f"{name}/events", params=params, headers=headers)
            if response.status_code == 404:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            if self._not_owner(response):
                raise ValueError(f"Session {short} does not belong to user {user_id}.")
            if response.status_code != 200:
                raise _ApiError(response).exception("list events")
            page = response.json()
            collected.extend(_read_event(e) for e in page.get("sessionEvents") or [])
            token = page.get("nextPageToken") or None
            if token is None:
                return ListEventsResponse(events=collected)
            if limit is not None and len(collected) >= limit:
                return ListEventsResponse(events=collected, next_page_token=token)
            params["pageToken"] = token
            if limit is not None:
                params["pageSize"] = min(limit - len(collected), _EVENT_PAGE)

    async def _update_session(
        self, *, app_name: str, user_id: str, session_id: str, metadata: SessionMetadata
    ) -> Session:
        short, name = await self._session_name(app_name, session_id)
        headers = self._user_headers(user_id)
        current = await self._get_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            config=GetSessionConfig(num_recent_events=0),
        )
        if current is None:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        body: dict[str, Any] = {}
        mask: list[str] = []
        if not isinstance(metadata.display_name, Unset):
            body["displayName"] = metadata.display_name
            mask.append("displayName")
        if not isinstance(metadata.labels, Unset):
            body["labels"] = dict(metadata.labels)
            mask.append("labels")
        if not mask:
            return current
        response = await self._call(
            "PATCH", name, params={"updateMask": ",".join(mask)}, body=body, headers=headers
        )
        if response.status_code == 404:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        if self._not_owner(response):
            raise ValueError(f"Session {short} does not belong to user {user_id}.")
        if response.status_code != 200:
            raise _ApiError(response).exception("update session")
        updated = response.json()
        if "userId" in updated:
            return self._session_from_api(updated, app_name, self._revision(response))
        # Google's API may answer with an operation: read the session back.
        got = await self._get_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            config=GetSessionConfig(num_recent_events=0),
        )
        if got is None:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        return got

    async def _search_events(
        self,
        *,
        app_name: str,
        terms: list[str],
        user_id: str | None,
        limit: int,
        after: PageKey | None,
    ) -> SearchEventsResponse:
        parent = await self._parent(self._engine_id(app_name))
        params: dict[str, Any] = {
            "query": " ".join(terms),
            "userId": user_id,
            "pageSize": limit,
            "pageToken": None if after is None else encode_page_token(after),
        }
        response = await self._call("GET", f"{parent}/sessions:search", params=params)
        if response.status_code in (404, 405) and not self._openadk_server:
            raise NotImplementedError(
                "search_events needs an openadk server; the Agent Engine Sessions API has no "
                "search."
            )
        if response.status_code != 200:
            raise _ApiError(response).exception("search events")
        body = response.json()
        hits = [
            SearchHit(
                session_id=str(h.get("session") or "").rsplit("/", 1)[-1],
                user_id=str(h.get("userId") or ""),
                event_id=str(h.get("eventId") or ""),
                author=str(h.get("author") or ""),
                timestamp=float(h.get("timestamp") or 0.0),
                snippet=str(h.get("snippet") or ""),
            )
            for h in body.get("hits") or []
        ]
        return SearchEventsResponse(hits=hits, next_page_token=body.get("nextPageToken") or None)

    async def _fork_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        new_session_id: str | None,
        up_to_invocation_id: str | None,
    ) -> Session:
        engine = self._engine_id(app_name)
        short, name = await self._session_name(app_name, session_id)
        body: dict[str, Any] = {}
        if new_session_id is not None:
            body["newSessionId"] = self._short_id(new_session_id, engine)
        if up_to_invocation_id is not None:
            body["upToInvocationId"] = up_to_invocation_id
        response = await self._call(
            "POST", f"{name}:fork", body=body, headers=self._user_headers(user_id)
        )
        if response.status_code == 404:
            if not self._openadk_server:
                raise NotImplementedError(
                    "fork_session needs an openadk server; the Agent Engine Sessions API has "
                    "no fork."
                )
            raise SessionNotFoundError(f"Session {session_id} not found.")
        if response.status_code == 409:
            raise AlreadyExistsError(f"Session with id {new_session_id} already exists.")
        if self._not_owner(response):
            raise ValueError(f"Session {short} does not belong to user {user_id}.")
        if response.status_code != 200:
            raise _ApiError(response).exception("fork session")
        fork_id = str(response.json().get("name") or "").rsplit("/", 1)[-1]
        got = await self._get_session(
            app_name=app_name, user_id=user_id, session_id=fork_id, config=None
        )
        if got is None:
            raise StorageError(f"Agent Engine Sessions API: fork {fork_id} vanished.")
        return got

    async def _delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        short, name = await self._session_name(app_name, session_id)
        headers = self._user_headers(user_id)
        response = await self._call("GET", name, headers=headers)
        if response.status_code == 404:
            return
        if self._not_owner(response) or (
            response.status_code == 200 and response.json().get("userId") != user_id
        ):
            raise ValueError(f"Session {short} does not belong to user {user_id}.")
        if response.status_code != 200:
            raise _ApiError(response).exception("delete session")
        response = await self._call("DELETE", name, headers=headers)
        if response.status_code == 404:
            return
        if self._not_owner(response):
            raise ValueError(f"Session {short} does not belong to user {user_id}.")
        if response.status_code != 200:
            raise _ApiError(response).exception("delete session")
        await self._wait(response.json(), "delete session")

    async def _get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        unsupported = NotImplementedError(
            "VertexAiSessionService does not support get_user_state on Vertex AI Agent Engine. "
            "The Vertex AI Agent Engine API does not expose user state independently of a "
            "session. To read user state, enumerate sessions via list_sessions and call "
            "get_session on each result (an openadk server supports it)."
        )
        if not self._self_hosted:
            raise unsupported
        parent = await self._parent(self._engine_id(app_name))
        response = await self._call("GET", f"{parent}/userState", params={"userId": user_id})
        if response.status_code == 404 and not response.headers.get(HEADER_SERVER):
            raise unsupported
        if response.status_code != 200:
            raise _ApiError(response).exception("get user state")
        return dict(response.json().get("state") or {})

    async def _append_event(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome:
        short, name = await self._session_name(session.app_name, session.id)
        body = event_to_api(plan.stored_event(event, event.timestamp))
        headers = self._user_headers(session.user_id)
        if self._self_hosted and self._on_stale == "error":
            marker = session._storage_update_marker
            if marker is not None:
                headers[HEADER_IF_REVISION] = quote(marker, safe="")
            else:
                last = session.events[-1].id if session.events else ""
                headers[HEADER_LAST_EVENT_ID] = quote(last, safe="")
        response = await self._call("POST", f"{name}:appendEvent", body=body, headers=headers)
        if response.status_code == 404:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        if self._not_owner(response):
            raise ValueError(f"Session {short} does not belong to user {session.user_id}.")
        if response.status_code == 409:
            error = _ApiError(response)
            if error.status == "ABORTED":
                raise StaleSessionError(error.message)
            raise ValueError(error.message)
        if response.status_code != 200:
            raise _ApiError(response).exception("append event")
        stamp = _float_header(response, HEADER_EVENT_TIMESTAMP, event.timestamp)
        return AppendOutcome(
            timestamp=stamp,
            last_update_time=_float_header(response, HEADER_UPDATE_TIME, stamp),
            marker=self._revision(response),
            duplicate=response.headers.get(HEADER_DUPLICATE) == "1",
        )


def _list_filter(user_id: str | None, filters: SessionFilter | None) -> str | None:
    """The API's ``filter`` for a listing: terms joined with AND, or None."""
    terms = []
    if user_id is not None:
        terms.append(f"user_id={quote_filter_literal(user_id)}")
    if filters:
        terms.extend(f"labels.{k}={quote_filter_literal(v)}" for k, v in filters.labels.items())
        if filters.updated_after is not None:
            terms.append(f'update_time>="{format_time(filters.updated_after, floor=True)}"')
        if filters.updated_before is not None:
            terms.append(f'update_time<"{format_time(filters.updated_before, floor=True)}"')
    return " AND ".join(terms) or None


def _float_header(response: httpx.Response, name: str, default: float) -> float:
    value = response.headers.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        return default
    return number if math.isfinite(number) else default


def _dumps(body: Any) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except ValueError as exc:
        raise ValueError(f"The request holds a value JSON cannot carry: {exc}.") from exc


def _refresh(credentials: Credentials) -> None:
    from google.auth.transport.requests import Request

    credentials.refresh(Request())  # type: ignore[no-untyped-call]


def _enterprise_mode() -> bool:
    for name in ("GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_USE_VERTEXAI"):
        value = os.environ.get(name)
        if value is not None:
            return value.strip().lower() in ("1", "true", "yes", "on")
    return False
