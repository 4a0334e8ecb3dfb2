"""`Gemini`: Google's Gemini models through google-genai (Gemini API or Vertex AI)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
from google import genai
from google.genai import errors, types

from openadk.models._base import BaseLlm, LlmRequest, LlmResponse, ModelError

__all__ = ["GEMINI_BASE_URL_ENV_VAR", "Gemini"]

GEMINI_BASE_URL_ENV_VAR = "OPENADK_GEMINI_BASE_URL"
"""When set, Gemini calls go to this URL instead of Google's endpoint (a proxy or a test server)."""

_TRUE = ("1", "true", "yes")
_NO_KEEP_ALIVE = httpx.Limits(max_keepalive_connections=0)

_HINTS = {
    400: "check the model name and the request (contents, tools)",
    401: "check GOOGLE_API_KEY / GEMINI_API_KEY, or your Vertex AI credentials",
    403: "check that the key or credentials may use this model and project",
    404: "check the model name (and GOOGLE_CLOUD_LOCATION on Vertex AI)",
    429: "quota or rate limit reached; wait and retry, or check your quota",
}


def _env_flag(*names: str) -> bool | None:
    """The first of ``names`` that is set, read as a boolean; None when none is set."""
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            return value.strip().lower() in _TRUE
    return None


class Gemini(BaseLlm):
    """A Gemini model called through google-genai's async client.

    Model strings ``gemini-*`` and ``models/gemini-*`` resolve to this class. Credentials come
    from the constructor or from the environment, read on the first call (so an agent can be
    built without them):

    * Gemini API: ``GOOGLE_API_KEY`` (or ``GEMINI_API_KEY``).
    * Vertex AI: ``GOOGLE_GENAI_USE_VERTEXAI=true`` with ``GOOGLE_CLOUD_PROJECT`` and
      ``GOOGLE_CLOUD_LOCATION`` (and application default credentials), or a Vertex API key.

    ``base_url`` (or ``$OPENADK_GEMINI_BASE_URL``) sends the calls elsewhere: a proxy, or a
    local server speaking the Gemini REST protocol. Every failure is raised as `ModelError`.

    The google-genai client is created on the first call and released by `close`. Each call
    opens its own connection and closes it when the answer is in: no connection is kept between
    calls, so a model object may be used from several event loops (``Runner.run`` makes one per
    call) and dropped without `close` without leaking sockets.
    """

    def __init__(
        self,
        model: str = "gemini-2.0-flash",
        *,
        api_key: str | None = None,
        vertexai: bool | None = None,
        project: str | None = None,
        location: str | None = None,
        base_url: str | None = None,
        timeout: float | None = 300.0,
        stream: bool = False,
        retry_options: types.HttpRetryOptions | None = None,
    ) -> None:
        """Creates the model; nothing is checked or connected until the first call.

        Args:
            model: The Gemini model name, e.g. ``"gemini-2.0-flash"``.
            api_key: Gemini API (or Vertex AI express) key; default from the environment.
            vertexai: Use Vertex AI; default ``$GOOGLE_GENAI_USE_VERTEXAI``.
            project: Vertex AI project; default ``$GOOGLE_CLOUD_PROJECT``.
            location: Vertex AI location; default ``$GOOGLE_CLOUD_LOCATION``.
            base_url: Endpoint to call instead of Google's; default ``$OPENADK_GEMINI_BASE_URL``.
            timeout: Seconds to wait for an answer; None waits forever.
            stream: Stream the answer: yield partial responses, then the complete one.
            retry_options: google-genai retry policy; by default a failed call is not retried.
        """
        super().__init__(model)
        self.api_key = api_key
        self.vertexai = vertexai
        self.project = project
        self.location = location
        self.base_url = base_url
        self.timeout = timeout
        self.stream = stream
        self.retry_options = retry_options
        self._client: genai.Client | None = None

    # -- client lifecycle -------------------------------------------------------------------

    def _endpoint(self) -> str | None:
        return self.base_url or os.environ.get(GEMINI_BASE_URL_ENV_VAR) or None

    def _new_client(self) -> genai.Client:
        vertexai = self.vertexai
        if vertexai is None:
            vertexai = _env_flag("GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_USE_VERTEXAI")
        has_key = (
            self.api_key or os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
        )
        if not vertexai and not has_key:
            raise ModelError(
                f"Gemini model {self.model!r} needs credentials: set GOOGLE_API_KEY "
                "(or GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT and "
                "GOOGLE_CLOUD_LOCATION), or use OPENADK_MODEL=offline to run without a model."
            )
        # No connection outlives a call (see the class docstring).
        options = types.HttpOptions(
            retry_options=self.retry_options, async_client_args={"limits": _NO_KEEP_ALIVE}
        )
        endpoint = self._endpoint()
        if endpoint:
            options.base_url = endpoint
        if self.timeout is not None:
            options.timeout = max(1, round(self.timeout * 1000))
        try:
            return genai.Client(
                vertexai=self.vertexai,
                api_key=self.api_key,
                project=self.project,
                location=self.location,
                http_options=options,
            )
        except Exception as exc:  # google-genai raises ValueError, google.auth errors, ...
            raise ModelError(
                f"Cannot set up the Gemini client for {self.model!r}: {exc}. Check GOOGLE_API_KEY "
                "or the Vertex AI settings (GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_CLOUD_PROJECT, "
                "GOOGLE_CLOUD_LOCATION, application default credentials)."
            ) from exc

    def _get_client(self) -> genai.Client:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def close(self) -> None:
        """Closes the google-genai client, if one was created; the next call makes a new one."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aio.aclose()
            finally:
                client.close()

    # -- calls ------------------------------------------------------------------------------

    def _config(self, request: LlmRequest) -> types.GenerateContentConfig:
        config = types.GenerateContentConfig()
        if request.system_instruction:
            config.system_instruction = request.system_instruction
        if request.tools:
            config.tools = [types.Tool(function_declarations=list(request.tools))]
        return config

    async def generate_content_async(self, request: LlmRequest) -> AsyncIterator[LlmResponse]:
        """Sends ``request`` to Gemini and yields its answer.

        Raises:
            ModelError: No credentials, the endpoint failed or timed out, or it answered garbage.
        """
        client = self._get_client()
        model = request.model or self.model
        config = self._config(request)
        try:
            if not self.stream:
                response = await client.aio.models.generate_content(
                    model=model, contents=list(request.contents), config=config
                )
                yield self._to_llm_response(response)
                return
            chunks: list[types.GenerateContentResponse] = []
            stream = await client.aio.models.generate_content_stream(
                model=model, contents=list(request.contents), config=config
            )
            async for chunk in stream:
                chunks.append(chunk)
                candidate = chunk.candidates[0] if chunk.candidates else None
                if candidate is not None and candidate.content and candidate.content.parts:
                    yield LlmResponse(
                        content=_model_content(candidate.content),
                        partial=True,
                        model_version=chunk.model_version,
                    )
        except errors.APIError as exc:
            raise ModelError(self._api_error_message(exc)) from exc
        except httpx.TimeoutException as exc:
            raise ModelError(
                f"Gemini model {model!r} did not answer within {self.timeout} s "
                f"({type(exc).__name__}); retry, or raise the timeout (Gemini(timeout=...))."
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ModelError(
                f"Cannot reach the Gemini endpoint for {model!r} ({self._where()}): "
                f"{type(exc).__name__}: {exc or 'no details'}. Check the network, "
                f"{GEMINI_BASE_URL_ENV_VAR} / base_url, and any proxy settings."
            ) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ModelError(
                f"The Gemini endpoint for {model!r} ({self._where()}) answered something that is "
                f"not a valid GenerateContentResponse: {type(exc).__name__}: {exc}"
            ) from exc
        yield self._aggregate(chunks)

    def _where(self) -> str:
        endpoint = self._endpoint()
        if endpoint:
            return endpoint
        return "Vertex AI" if self._client is not None and self._client.vertexai else "Gemini API"

    def _api_error_message(self, exc: errors.APIError) -> str:
        code = exc.code
        hint = _HINTS.get(code) or ("the service failed; retry later" if code >= 500 else "")
        detail = exc.message or exc.details
        message = f"Gemini endpoint ({self._where()}) answered HTTP {code}"
        if exc.status:
            message += f" {exc.status}"
        message += f" for model {self.model!r}: {detail}"
        return f"{message}. Hint: {hint}." if hint else f"{message}."

    def _to_llm_response(self, response: types.GenerateContentResponse) -> LlmResponse:
        usage = response.usage_metadata
        if response.candidates:
            candidate = response.candidates[0]
            if candidate.content and candidate.content.parts:
                return LlmResponse(
                    content=_model_content(candidate.content),
                    finish_reason=candidate.finish_reason,
                    usage_metadata=usage,
                    model_version=response.model_version,
                )
            if candidate.finish_reason is not None:
                # An answer withheld (safety, recitation, ...): an outcome, not a failure.
                return LlmResponse(
                    finish_reason=candidate.finish_reason,
                    error_code=candidate.finish_reason.name,
                    error_message=candidate.finish_message
                    or f"The model stopped without content ({candidate.finish_reason.name}).",
                    usage_metadata=usage,
                    model_version=response.model_version,
                )
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            return LlmResponse(
                error_code=feedback.block_reason.name,
                error_message=feedback.block_reason_message
                or f"The prompt was blocked ({feedback.block_reason.name}).",
                usage_metadata=usage,
                model_version=response.model_version,
            )
        raise ModelError(
            f"The Gemini endpoint for {self.model!r} ({self._where()}) answered without any "
            "candidate or block reason; check that base_url points at a Gemini API endpoint."
        )

    def _aggregate(self, chunks: list[types.GenerateContentResponse]) -> LlmResponse:
        """The complete response of a stream: all parts merged, metadata from the last chunk."""
        if not chunks:
            raise ModelError(
                f"The Gemini endpoint for {self.model!r} ({self._where()}) closed the stream "
                "without sending anything."
            )
        parts: list[types.Part] = []
        finish_reason: types.FinishReason | None = None
        usage: types.GenerateContentResponseUsageMetadata | None = None
        model_version: str | None = None
        for chunk in chunks:
            usage = chunk.usage_metadata or usage
            model_version = chunk.model_version or model_version
            if not chunk.candidates:
                continue
            candidate = chunk.candidates[0]
            finish_reason = candidate.finish_reason or finish_reason
            for part in (candidate.content.parts if candidate.content else None) or []:
                last = parts[-1] if parts else None
                if (
                    part.text is not None
                    and last is not None
                    and last.text is not None
                    and bool(last.thought) == bool(part.thought)
                    and not part.thought_signature
                ):
                    parts[-1] = last.model_copy(update={"text": last.text + part.text})
                else:
                    parts.append(part)
        if not parts:
            final = chunks[-1].model_copy()
            final.usage_metadata = usage
            final.model_version = model_version
            return self._to_llm_response(final)
        return LlmResponse(
            content=types.Content(role="model", parts=parts),
            finish_reason=finish_reason,
            usage_metadata=usage,
            model_version=model_version,
        )


def _model_content(content: types.Content) -> types.Content:
    if content.role == "model":
        return content
    return content.model_copy(update={"role": "model"})
