"""`OfflineModel`: a deterministic stand-in for a real model, for demos and tests without a key."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from google.genai import types

from openadk.models._base import BaseLlm, LlmRequest, LlmResponse

__all__ = ["OFFLINE_MARKER", "RECALL_TOOL", "REMEMBER_TOOL", "OfflineModel"]

OFFLINE_MARKER = "openadk_offline_model"
"""Key set to True in ``custom_metadata`` of every offline reply, so nobody mistakes it for AI."""

REMEMBER_TOOL = "remember"
"""When the agent offers a tool of this name, the offline model calls it with each new fact as
``remember(key="user:name", value="Alice")``."""

RECALL_TOOL = "recall"
"""When the agent offers a tool of this name, the offline model calls it as ``recall(key=...)``
for a question the conversation cannot answer, and reads the ``"value"`` of its result."""

# A value is one to four words; a conjunction or punctuation ends it, so "My name is Ann and I
# live in Oslo" gives the name "Ann", not "Ann and I live in Oslo".
_STOP = r"(?:and|but|or|so|because|what|where|who|how|too|also|please)\b"
_VALUE = rf"(?P<value>[\w'-]+(?:[ \t]+(?!{_STOP})[\w'-]+){{0,3}})"
_THING = r"(?P<thing>[a-z]+(?:[ \t]+(?!is\b|and\b|or\b)[a-z]+)?)"

_STATEMENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\bmy name is {_VALUE}", re.I), "user:name"),
    (re.compile(rf"\bcall me {_VALUE}", re.I), "user:name"),
    (re.compile(rf"\bi(?: am|'m) called {_VALUE}", re.I), "user:name"),
    # Not after "do"/"did": "Do I live in Paris?" asks, it does not tell.
    (re.compile(rf"(?<!\bdo )(?<!\bdid )\bi live in {_VALUE}", re.I), "user:city"),
    (re.compile(rf"(?<!\bdo )(?<!\bdid )\bi (?:am|come) from {_VALUE}", re.I), "user:city"),
    (re.compile(rf"\bi'm from {_VALUE}", re.I), "user:city"),
    (re.compile(rf"\bmy (?:city|home ?town) is {_VALUE}", re.I), "user:city"),
    (re.compile(rf"\bmy favou?rite {_THING} is {_VALUE}", re.I), "user:favorite_"),
]
_QUESTIONS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"\b(?:what(?:'s|s| is)|tell me|do you (?:know|remember)) my name\b", re.I),
        "user:name",
    ),
    (re.compile(r"\bwho am i\b", re.I), "user:name"),
    (re.compile(r"\bwhere (?:do i live|am i from|do i come from|is my home)\b", re.I), "user:city"),
    (re.compile(r"\bdo i (?:live in|come from)\b", re.I), "user:city"),
    (re.compile(r"\bwhat(?:'s|s| is) my (?:city|home ?town)\b", re.I), "user:city"),
    (re.compile(rf"\bwhat(?:'s|s| is| was) my favou?rite {_THING}", re.I), "user:favorite_"),
]
_GREETING = re.compile(r"^\s*(hello|hi|hey|hi there|good (morning|afternoon|evening))\b", re.I)
_SPELLINGS = {"colour": "color", "flavour": "flavor", "favourite": "favorite"}


@dataclass(frozen=True)
class _Found:
    key: str
    value: str
    at: int


def _fact_key(base: str, match: re.Match[str]) -> str:
    if not base.endswith("_"):
        return base
    words = [_SPELLINGS.get(w, w) for w in match.group("thing").lower().split()]
    return base + "_".join(words)


def _label(key: str) -> str:
    name = key.removeprefix("user:")
    if name.startswith("favorite_"):
        return "favorite " + name.removeprefix("favorite_").replace("_", " ")
    return name


def _text_of(content: types.Content) -> str:
    text = " ".join(part.text for part in content.parts or [] if part.text).strip()
    # A typographic apostrophe (I\u2019m) reads as a plain one.
    return text.replace("\u2019", "'")


def _statements(text: str) -> list[_Found]:
    found = [
        _Found(_fact_key(base, m), m.group("value").strip(" '-"), m.start())
        for pattern, base in _STATEMENTS
        for m in pattern.finditer(text)
    ]
    return sorted(found, key=lambda f: f.at)


def _questions(text: str, stated: list[_Found]) -> list[str]:
    found: list[tuple[int, str]] = []
    for pattern, base in _QUESTIONS:
        found.extend((m.start(), _fact_key(base, m)) for m in pattern.finditer(text))
    keys: list[str] = []
    for _, key in sorted(found):
        if key not in keys:
            keys.append(key)
    # "Do you know my name?" without a statement of the name in the same message.
    if (
        not keys
        and "?" in text
        and re.search(r"\bmy name\b", text, re.I)
        and not any(f.key == "user:name" for f in stated)
    ):
        keys.append("user:name")
    return keys


def _facts(contents: list[types.Content]) -> dict[str, str]:
    facts: dict[str, str] = {}
    for content in contents:
        if content.role == "user":
            facts.update((f.key, f.value) for f in _statements(_text_of(content)))
    return facts


def _answer(key: str, value: str | None) -> str:
    label = _label(key)
    if key == "user:city":
        return f"You live in {value}." if value else "You have not told me where you live yet."
    return f"Your {label} is {value}." if value else f"You have not told me your {label} yet."


def _confirm(new: dict[str, str]) -> str:
    if "user:name" in new:
        text = f"Nice to meet you, {new['user:name']}! I will remember that."
        rest = {k: v for k, v in new.items() if k != "user:name"}
        return text + (" " + _confirm(rest) if rest else "")
    told = [
        f"you live in {v}" if k == "user:city" else f"your {_label(k)} is {v}"
        for k, v in new.items()
    ]
    return "Noted: " + ", ".join(told) + "."


def _call(name: str, args: dict[str, Any]) -> types.Part:
    call_id = f"offline-{uuid.uuid4().hex[:12]}"
    return types.Part(function_call=types.FunctionCall(id=call_id, name=name, args=args))


def _respond(request: LlmRequest) -> list[types.Part]:
    """Builds the reply (text, or tool calls) to the last user message of the conversation."""
    contents = request.contents
    tools = {tool.name for tool in request.tools}
    user_turns = [c for c in contents if c.role == "user" and _text_of(c)]
    if not user_turns:
        return [types.Part(text="Hello! (offline demo model) Say something and I will answer.")]
    last_turn = user_turns[-1]
    last = _text_of(last_turn)
    position = max(i for i, c in enumerate(contents) if c is last_turn)
    earlier = _facts(contents[:position])
    stated = _statements(last)
    new = {f.key: f.value for f in stated if earlier.get(f.key) != f.value}
    questions = _questions(last, stated)
    known = {**earlier, **{f.key: f.value for f in stated}}

    answered_by_tools = position < len(contents) - 1
    if answered_by_tools:
        # The tools this message asked for have answered: use what `recall` found.
        for content in contents[position + 1 :]:
            for part in content.parts or []:
                response = part.function_response
                if response is not None and response.name == RECALL_TOOL:
                    value = (response.response or {}).get("value")
                    key = (response.response or {}).get("key")
                    if isinstance(key, str) and value not in (None, ""):
                        known.setdefault(key, str(value))
    else:
        calls: list[types.Part] = []
        if REMEMBER_TOOL in tools:
            calls += [_call(REMEMBER_TOOL, {"key": k, "value": v}) for k, v in new.items()]
        if RECALL_TOOL in tools:
            calls += [_call(RECALL_TOOL, {"key": k}) for k in questions if k not in known]
        if calls:
            return calls

    sentences: list[str] = []
    if new:
        sentences.append(_confirm(new))
    sentences.extend(_answer(key, known.get(key)) for key in questions)
    if sentences:
        return [types.Part(text=" ".join(sentences))]
    lowered = last.lower()
    if "remember me" in lowered:
        if earlier:
            told = ", ".join(f"{_label(k)}: {v}" for k, v in sorted(earlier.items()))
            return [types.Part(text=f"Yes, I remember you ({told}).")]
        if len(user_turns) > 1:
            return [
                types.Part(
                    text=f"Yes, we have talked before: this is message {len(user_turns)} of yours."
                )
            ]
        return [types.Part(text="This is the first time we talk.")]
    if _GREETING.match(last):
        name = known.get("user:name")
        return [types.Part(text=f"Hello{', ' + name if name else ''}! How can I help you today?")]
    return [
        types.Part(
            text=f'You said: "{last}". (offline demo model: {len(user_turns)} message(s) '
            f"from you so far)"
        )
    ]


class OfflineModel(BaseLlm):
    """Answers without any network, deterministically, from the conversation it is given.

    It understands a few statements (``My name is Ann``, ``I live in Oslo`` / ``I am from Oslo``,
    ``My favourite colour is blue``) and questions about them (``What is my name and where do I
    live?``), and answers from what the user said in earlier turns. When the agent offers tools
    named ``remember`` and ``recall`` (see `REMEMBER_TOOL`, `RECALL_TOOL`) it calls them, so the
    facts can live in session state (``user:name``, ``user:city``, ``user:favorite_color``) and
    outlast the conversation. Every reply carries ``custom_metadata={"openadk_offline_model":
    True}``. It is not an AI model.
    """

    def __init__(self, model: str = "offline") -> None:
        super().__init__(model)

    async def generate_content_async(self, request: LlmRequest) -> AsyncIterator[LlmResponse]:
        yield LlmResponse(
            content=types.Content(role="model", parts=_respond(request)),
            finish_reason=types.FinishReason.STOP,
            model_version="openadk-offline-1",
            custom_metadata={OFFLINE_MARKER: True},
        )
