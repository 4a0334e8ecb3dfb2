"""The model interface: a request built from a session, and the responses a model streams back."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from google.genai import types
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BaseLlm", "LlmRequest", "LlmResponse", "ModelError"]


class ModelError(RuntimeError):
    """A model call failed: the endpoint is down, refused the request, or answered garbage."""


class LlmRequest(BaseModel):
    """What an agent sends a model: the conversation so far, instructions and tools."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = ""
    contents: list[types.Content] = Field(default_factory=list)
    """The conversation, oldest first; roles are ``user`` and ``model``."""
    system_instruction: str | None = None
    tools: list[types.FunctionDeclaration] = Field(default_factory=list)


class LlmResponse(BaseModel):
    """One response (or, when ``partial``, one streamed chunk) from a model."""

    content: types.Content | None = None
    partial: bool | None = None
    finish_reason: types.FinishReason | None = None
    error_code: str | None = None
    error_message: str | None = None
    usage_metadata: types.GenerateContentResponseUsageMetadata | None = None
    model_version: str | None = None
    custom_metadata: dict[str, Any] | None = None


class BaseLlm(abc.ABC):
    """A model an agent can call.

    Attributes:
        model: The model name as the agent gave it (``"gemini-2.0-flash"``, ``"offline"``, ...).
    """

    def __init__(self, model: str) -> None:
        self.model = model

    @abc.abstractmethod
    def generate_content_async(self, request: LlmRequest) -> AsyncIterator[LlmResponse]:
        """Sends ``request`` and yields the model's responses.

        Raises:
            ModelError: The call failed; the message says why and what to check.
        """

    async def close(self) -> None:  # noqa: B027 - most models hold nothing to release
        """Releases the model's connections."""
