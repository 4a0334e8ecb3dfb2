"""Events: the entries of a session's history."""

from openadk.events._event import CacheMetadata, Event, NodeInfo
from openadk.events._event_actions import EventActions, EventCompaction, ToolConfirmation, UiWidget

__all__ = [
    "CacheMetadata",
    "Event",
    "EventActions",
    "EventCompaction",
    "NodeInfo",
    "ToolConfirmation",
    "UiWidget",
]
