"""`OfflineModel`: a deterministic stand-in for a real model, for demos and tests without a key."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from google.genai import types

from openadk.models._base import BaseLlm, LlmRequest, LlmResponse

__all__ = ["OFFLINE_MARKER", "OfflineModel"]

OFFLINE_MARKER = "openadk_offline_model"
"""Key set to True in ``custom_metadata`` of every offline reply, so nobody mistakes it for AI."""

# Facts a user may state, as (pattern, fact name). Matched case-insensitively.
_FACT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bmy name is ([\w' -]+?)(?:[.!,]|$)", re.I), "name"),
    (re.compile(r"\bcall me ([\w' -]+?)(?:[.!,]|$)", re.I), "name"),
    (re.compile(r"\bi live in ([\w' -]+?)(?:[.!,]|$)", re.I), "home"),
    (re.compile(r"\bmy favou?rite ([\w ]+?) is ([\w' -]+?)(?:[.!,]|$)", re.I), "favorite"),
]
_GREETING = re.compile(r"^\s*(hello|hi|hey|hi there|good (morning|afternoon|evening))\b", re.I)


def _text_of(content: types.Content) -> str:
    return " ".join(part.text for part in content.parts or [] if part.text).strip()


def _facts(contents: list[types.Content]) -> dict[str, str]:
    facts: dict[str, str] = {}
    for content in contents:
        if content.role != "user":
            continue
        text = _text_of(content)
        for pattern, kind in _FACT_PATTERNS:
            for match in pattern.finditer(text):
                if kind == "favorite":
                    facts[f"favorite {match.group(1).strip().lower()}"] = match.group(2).strip()
                else:
                    facts[kind] = match.group(1).strip()
    return facts


def _reply(contents: list[types.Content]) -> str:
    """Builds the reply to the last user message from the whole conversation."""
    user_turns = [c for c in contents if c.role == "user" and _text_of(c)]
    if not user_turns:
        return "Hello! (offline demo model) Say something and I will answer."
    last = _text_of(user_turns[-1])
    lowered = last.lower()
    earlier = _facts(contents[: contents.index(user_turns[-1])])
    facts = _facts(contents)
    name = facts.get("name")
    if "name" in lowered and "?" in last:
        return f"Your name is {name}." if name else "You have not told me your name yet."
    favorite = re.search(r"\bmy favou?rite ([\w ]+?)\?", lowered)
    if favorite:
        key = f"favorite {favorite.group(1).strip()}"
        known = facts.get(key)
        return f"Your {key} is {known}." if known else f"You have not told me your {key} yet."
    if "where do i live" in lowered:
        home = facts.get("home")
        return f"You live in {home}." if home else "You have not told me where you live yet."
    if "remember me" in lowered:
        if earlier:
            told = ", ".join(f"{k}: {v}" for k, v in sorted(earlier.items()))
            return f"Yes, I remember you ({told})."
        previous = len(user_turns) - 1
        if previous:
            return f"Yes, we have talked before: this is message {previous + 1} of yours."
        return "This is the first time we talk."
    new = {k: v for k, v in _facts([user_turns[-1]]).items() if earlier.get(k) != v}
    if "name" in new:
        return f"Nice to meet you, {new['name']}! I will remember that."
    if new:
        return "Noted: " + ", ".join(f"your {k} is {v}" for k, v in sorted(new.items())) + "."
    if _GREETING.match(last):
        return f"Hello{', ' + name if name else ''}! How can I help you today?"
    return f'You said: "{last}". (offline demo model: {len(user_turns)} message(s) from you so far)'


class OfflineModel(BaseLlm):
    """Answers without any network, deterministically, from the conversation it is given.

    It remembers what the user said in earlier turns (name, where they live, favourites), so a
    session's memory can be shown and tested without a model key. Every reply carries
    ``custom_metadata={"openadk_offline_model": True}``. It is not an AI model.
    """

    def __init__(self, model: str = "offline") -> None:
        super().__init__(model)

    async def generate_content_async(self, request: LlmRequest) -> AsyncIterator[LlmResponse]:
        text = _reply(request.contents)
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)]),
            finish_reason=types.FinishReason.STOP,
            model_version="openadk-offline-1",
            custom_metadata={OFFLINE_MARKER: True},
        )
