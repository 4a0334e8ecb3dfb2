"""`OpenAICompatible`: any server speaking OpenAI's chat completions API (Ollama, vLLM, ...)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from google.genai import types

from openadk.models._base import BaseLlm, LlmRequest, LlmResponse, ModelError

__all__ = ["OPENAI_API_KEY_ENV_VAR", "OPENAI_BASE_URL_ENV_VAR", "OpenAICompatible"]

OPENAI_BASE_URL_ENV_VAR = "OPENAI_BASE_URL"
"""The endpoint's base URL, up to and including ``/v1`` (``http://localhost:11434/v1``)."""
OPENAI_API_KEY_ENV_VAR = "OPENAI_API_KEY"
"""Sent as a bearer token when set; local servers (Ollama, vLLM, llama.cpp) need none."""

_PREFIX = "openai/"
_NO_KEEP_ALIVE = httpx.Limits(max_keepalive_connections=0)

_FINISH_REASONS = {
    "stop": types.FinishReason.STOP,
    "tool_calls": types.FinishReason.STOP,
    "function_call": types.FinishReason.STOP,
    "length": types.FinishReason.MAX_TOKENS,
    "content_filter": types.FinishReason.SAFETY,
}

_HINTS = {
    400: "the server rejected the request; check the model name and that it supports tools",
    401: f"check {OPENAI_API_KEY_ENV_VAR}",
    403: f"check that {OPENAI_API_KEY_ENV_VAR} may use this model",
    404: f"check the model name, and that {OPENAI_BASE_URL_ENV_VAR} ends in /v1",
    429: "rate limit reached; wait and retry",
}


class OpenAICompatible(BaseLlm):
    """A model served by an OpenAI-compatible ``/chat/completions`` endpoint.

    Model strings ``openai/<name>`` resolve to this class and call model ``<name>`` (exactly one
    ``openai/`` prefix is removed, so ``openai/openai/gpt-4o`` calls ``openai/gpt-4o``). The
    endpoint is ``base_url`` or ``$OPENAI_BASE_URL`` (required, e.g.
    ``http://localhost:11434/v1`` for Ollama); ``$OPENAI_API_KEY``, when set, is sent as a bearer
    token. Calls are not streamed. Every failure is raised as `ModelError`.

    The HTTP client is created on the first call and released by `close`. Each call opens its
    own connection and closes it when the answer is in: no connection is kept between calls, so
    a model object may be used from several event loops (``Runner.run`` makes one per call) and
    dropped without `close` without leaking sockets.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = 120.0,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        """Creates the model; nothing is checked or connected until the first call.

        Args:
            model: ``openai/<name>`` or ``<name>``: the model name the server knows.
            base_url: The endpoint's base URL; default ``$OPENAI_BASE_URL``.
            api_key: Bearer token; default ``$OPENAI_API_KEY``; none is sent when neither is set.
            timeout: Seconds to wait for an answer; None waits forever.
            headers: Extra HTTP headers for every call.
            extra_body: Extra top-level fields for every request (``temperature``, ...).
        """
        super().__init__(model)
        self.model_name = model[len(_PREFIX) :] if model.startswith(_PREFIX) else model
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.extra_body = dict(extra_body or {})
        self._client: httpx.AsyncClient | None = None

    # -- client lifecycle -------------------------------------------------------------------

    def _url(self) -> str:
        base = self.base_url or os.environ.get(OPENAI_BASE_URL_ENV_VAR)
        if not base:
            raise ModelError(
                f"OpenAI-compatible model {self.model!r} needs an endpoint: set "
                f"{OPENAI_BASE_URL_ENV_VAR} (e.g. http://localhost:11434/v1 for Ollama) or pass "
                "base_url=..., or use OPENADK_MODEL=offline to run without a model."
            )
        return base.rstrip("/") + "/chat/completions"

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=_NO_KEEP_ALIVE)
        return self._client

    async def close(self) -> None:
        """Closes the HTTP client, if one was created; the next call makes a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- calls ------------------------------------------------------------------------------

    def _request_body(self, request: LlmRequest) -> dict[str, Any]:
        model = request.model or self.model
        name = model[len(_PREFIX) :] if model.startswith(_PREFIX) else model
        body: dict[str, Any] = {
            "model": name,
            "messages": to_messages(request.contents, request.system_instruction),
            "stream": False,
        }
        if request.tools:
            body["tools"] = [to_tool(declaration) for declaration in request.tools]
        body.update(self.extra_body)
        return body

    async def generate_content_async(self, request: LlmRequest) -> AsyncIterator[LlmResponse]:
        """Sends ``request`` to the endpoint and yields its answer.

        Raises:
            ModelError: No endpoint configured, the endpoint failed or timed out, or it answered
                garbage.
        """
        url = self._url()
        body = self._request_body(request)
        headers = {"Accept": "application/json", **self.headers}
        api_key = self.api_key or os.environ.get(OPENAI_API_KEY_ENV_VAR)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        client = self._get_client()
        try:
            response = await client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ModelError(
                f"OpenAI-compatible endpoint {url} did not answer within {self.timeout} s "
                f"({type(exc).__name__}); the model may still be loading. Retry, or raise the "
                "timeout (OpenAICompatible(timeout=...))."
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ModelError(
                f"Cannot reach the OpenAI-compatible endpoint {url}: {type(exc).__name__}: "
                f"{exc or 'no details'}. Check that the server is running and that "
                f"{OPENAI_BASE_URL_ENV_VAR} is right."
            ) from exc
        if not response.is_success:
            raise ModelError(_http_error_message(url, response))
        try:
            data = response.json()
        except ValueError as exc:
            raise ModelError(
                f"OpenAI-compatible endpoint {url} answered HTTP {response.status_code} with "
                f"something that is not JSON: {_snippet(response.text)!r}. Check that "
                f"{OPENAI_BASE_URL_ENV_VAR} points at the API (usually ending in /v1)."
            ) from exc
        yield _to_llm_response(data, url)


# -- request mapping ------------------------------------------------------------------------


def to_tool(declaration: types.FunctionDeclaration) -> dict[str, Any]:
    """An OpenAI ``tools`` entry for a function declaration."""
    if declaration.parameters_json_schema is not None:
        parameters: Any = declaration.parameters_json_schema
    elif declaration.parameters is not None:
        parameters = declaration.parameters.json_schema.model_dump(mode="json", exclude_none=True)
    else:
        parameters = {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": declaration.name, "parameters": parameters}
    if declaration.description:
        function["description"] = declaration.description
    return {"type": "function", "function": function}


def to_messages(
    contents: list[types.Content], system_instruction: str | None = None
) -> list[dict[str, Any]]:
    """OpenAI chat messages for a conversation: system first, ``model`` as ``assistant``.

    Function calls become ``tool_calls`` of the assistant's message and function responses
    become ``tool`` messages; calls without an id get one, matched to their response by name.

    Raises:
        ModelError: A part cannot be expressed in the chat completions format.
    """
    messages: list[dict[str, Any]] = []
    if system_instruction:
        messages.append({"role": "system", "content": system_instruction})
    pending: dict[str, list[str]] = {}  # function name -> ids of calls not yet answered
    generated = 0
    for content in contents:
        role = "assistant" if content.role == "model" else "user"
        texts: list[str] = []
        images: list[dict[str, Any]] = []
        tool_calls: list[dict[str, Any]] = []
        tool_messages: list[dict[str, Any]] = []
        for part in content.parts or []:
            if part.thought:
                continue  # the model's own reasoning is not sent back
            if part.text is not None:
                texts.append(part.text)
            elif part.function_call is not None:
                call = part.function_call
                call_id = call.id
                if not call_id:
                    generated += 1
                    call_id = f"call_{generated}"
                pending.setdefault(call.name or "", []).append(call_id)
                tool_calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": call.name or "",
                            "arguments": json.dumps(call.args or {}),
                        },
                    }
                )
            elif part.function_response is not None:
                answer = part.function_response
                waiting = pending.get(answer.name or "", [])
                answer_id = answer.id
                if answer_id and answer_id in waiting:
                    waiting.remove(answer_id)
                elif not answer_id:
                    answer_id = waiting.pop(0) if waiting else f"call_{answer.name or 'unknown'}"
                tool_messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": answer_id,
                        "content": json.dumps(answer.response or {}, default=str),
                    }
                )
            elif (
                part.inline_data is not None
                and part.inline_data.data is not None
                and (part.inline_data.mime_type or "").startswith("image/")
            ):
                encoded = base64.b64encode(part.inline_data.data).decode("ascii")
                url = f"data:{part.inline_data.mime_type};base64,{encoded}"
                images.append({"type": "image_url", "image_url": {"url": url}})
            else:
                kinds = sorted(part.model_dump(exclude_none=True))
                raise ModelError(
                    "The OpenAI-compatible client can send text, images, function calls and "
                    f"function responses only; a {content.role!r} message has a part with "
                    f"{', '.join(kinds) or 'nothing'}."
                )
        text = "\n".join(texts)
        if role == "assistant" and (text or tool_calls):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            messages.append(message)
        elif role == "user" and images:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            messages.append({"role": "user", "content": blocks + images})
        elif role == "user" and texts:
            messages.append({"role": "user", "content": text})
        messages.extend(tool_messages)
    return messages


# -- response mapping -----------------------------------------------------------------------


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _http_error_message(url: str, response: httpx.Response) -> str:
    detail: Any = None
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            detail = error.get("message") or error.get("detail") or error.get("msg")
        elif isinstance(error, str):
            detail = error  # Ollama: {"error": "model 'x' not found"}
        if detail is None and isinstance(data.get("detail"), str):
            detail = data["detail"]
    if not detail:
        detail = _snippet(response.text) or response.reason_phrase or "no details"
    code = response.status_code
    hint = _HINTS.get(code) or ("the server failed; check its logs" if code >= 500 else "")
    message = f"OpenAI-compatible endpoint {url} answered HTTP {code}: {detail}"
    return f"{message}. Hint: {hint}." if hint else f"{message}."


def _garbage(url: str, what: str) -> ModelError:
    return ModelError(
        f"OpenAI-compatible endpoint {url} answered a malformed chat completion: {what}. Check "
        f"that {OPENAI_BASE_URL_ENV_VAR} points at an OpenAI-compatible API (usually .../v1)."
    )


def _arguments(raw: Any, name: str, url: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise _garbage(url, f"the arguments of tool call {name!r} are not a JSON object: {raw!r}")


def _to_llm_response(data: Any, url: str) -> LlmResponse:
    if not isinstance(data, dict):
        raise _garbage(url, f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _garbage(url, "no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise _garbage(url, "the first choice has no message")
    parts: list[types.Part] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(types.Part(text=reasoning, thought=True))
    text = message.get("content")
    if isinstance(text, list):  # some servers answer content blocks
        text = "".join(
            block.get("text", "")
            for block in text
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    if text is not None and not isinstance(text, str):
        raise _garbage(url, f"the message content is a {type(text).__name__}")
    if text:
        parts.append(types.Part(text=text))
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise _garbage(url, "tool_calls is not a list")
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _garbage(url, f"a tool call without a function name: {call!r}")
        name = function["name"]
        call_id = call.get("id")
        parts.append(
            types.Part(
                function_call=types.FunctionCall(
                    id=call_id if isinstance(call_id, str) and call_id else None,
                    name=name,
                    args=_arguments(function.get("arguments"), name, url),
                )
            )
        )
    raw_reason = choices[0].get("finish_reason")
    finish_reason = (
        _FINISH_REASONS.get(raw_reason, types.FinishReason.OTHER)
        if isinstance(raw_reason, str)
        else None
    )
    usage = _usage(data.get("usage"))
    model_version = data.get("model") if isinstance(data.get("model"), str) else None
    if not parts:
        return LlmResponse(
            finish_reason=finish_reason,
            error_code="EMPTY_RESPONSE",
            error_message=f"The model answered an empty message (finish_reason={raw_reason!r}).",
            usage_metadata=usage,
            model_version=model_version,
        )
    return LlmResponse(
        content=types.Content(role="model", parts=parts),
        finish_reason=finish_reason,
        usage_metadata=usage,
        model_version=model_version,
    )


def _usage(raw: Any) -> types.GenerateContentResponseUsageMetadata | None:
    if not isinstance(raw, dict):
        return None

    def count(key: str) -> int | None:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return types.GenerateContentResponseUsageMetadata(
        prompt_token_count=count("prompt_tokens"),
        candidates_token_count=count("completion_tokens"),
        total_token_count=count("total_tokens"),
    )
