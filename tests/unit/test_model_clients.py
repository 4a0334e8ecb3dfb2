"""The Gemini and OpenAI-compatible clients against local HTTP servers speaking their protocols.

Nothing is mocked in Python: each test starts a real HTTP server on 127.0.0.1 that records the
requests google-genai / httpx send and answers with canned protocol responses.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.genai import types

from openadk import Agent, Runner
from openadk.models import (
    BaseLlm,
    Gemini,
    LlmRequest,
    LlmResponse,
    ModelError,
    OpenAICompatible,
    resolve_model,
)
from openadk.models._openai_compat import to_messages
from openadk.sessions import InMemorySessionService

# --------------------------------------------------------------------------------------------
# A local HTTP server


# The timeout tests: the server holds its answer until the test ends, so only the client's
# timeout can end the call and no elapsed time needs measuring (a socket timeout cannot take an
# injectable clock). HANG_GUARD turns a missing timeout into a failure instead of a hang; it is
# 200 times the 0.3 s timeout, so a loaded machine cannot trip it.
NEVER = 3600.0
HANG_GUARD = 60.0


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent verbatim
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeServer:
    """Records every request; answers with queued replies, then with ``default``."""

    default: Reply = field(default_factory=Reply)
    replies: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    open_connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def next_reply(self) -> Reply:
        with self.lock:
            return self.replies.pop(0) if self.replies else self.default

    def wait_connections_closed(self, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake.lock:
            self.server.fake.open_connections += 1

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.fake.lock:
                self.server.fake.open_connections -= 1

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        fake.received.append(
            Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        reply = fake.next_reply()
        if reply.delay:
            fake.release.wait(reply.delay)
        payload = (
            reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode("utf-8")
        )
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (timeout test)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is expected in the timeout tests


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    httpd = _Server(fake)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _unversioned(path: str) -> str:
    """The request path without its API version: google-genai 2 calls /v1beta, 3 calls /v1."""
    return re.sub(r"^/v1(beta)?", "", path)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


_ENV_VARS = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_HTTP_CLIENT",
    "OPENADK_MODEL",
    "OPENADK_GEMINI_BASE_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------------------------
# Helpers


def user(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def model_said(text: str) -> types.Content:
    return types.Content(role="model", parts=[types.Part(text=text)])


WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather in a city.",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)


async def collect(llm: BaseLlm, request: LlmRequest) -> list[LlmResponse]:
    return [response async for response in llm.generate_content_async(request)]


async def call(llm: BaseLlm, request: LlmRequest) -> LlmResponse:
    try:
        responses = await collect(llm, request)
    finally:
        await llm.close()
    assert len(responses) == 1
    return responses[0]


def gemini_answer(text: str, *, version: str = "gemini-test-001") -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 11,
            "candidatesTokenCount": 3,
            "totalTokenCount": 14,
        },
        "modelVersion": version,
    }


def openai_answer(
    text: str | None, *, tool_calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "test-model-q4",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


CONVERSATION = [user("My name is Alice."), model_said("Nice to meet you, Alice!"), user("Name?")]


# --------------------------------------------------------------------------------------------
# Registry


@pytest.mark.parametrize(
    ("model", "cls", "name"),
    [
        ("gemini-2.0-flash", Gemini, "gemini-2.0-flash"),
        ("models/gemini-1.5-pro", Gemini, "models/gemini-1.5-pro"),
        ("openai/llama3.2", OpenAICompatible, "llama3.2"),
        ("openai/openai/gpt-4o", OpenAICompatible, "openai/gpt-4o"),
    ],
)
def test_model_strings_resolve_to_the_clients(model: str, cls: type[BaseLlm], name: str) -> None:
    llm = resolve_model(model)
    assert type(llm) is cls
    assert llm.model == model
    if isinstance(llm, OpenAICompatible):
        assert llm.model_name == name


def test_offline_override_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENADK_MODEL", "offline")
    assert type(resolve_model("gemini-2.0-flash")).__name__ == "OfflineModel"


def test_openai_prefix_alone_is_not_a_model() -> None:
    with pytest.raises(ValueError, match="Unknown model"):
        resolve_model("openai/")


# --------------------------------------------------------------------------------------------
# Gemini


@pytest.mark.asyncio
async def test_gemini_sends_the_conversation_and_maps_the_answer(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    server.default = Reply(body=gemini_answer("Your name is Alice."))
    llm = Gemini("gemini-test", base_url=server.url)
    request = LlmRequest(
        model="gemini-test",
        contents=CONVERSATION,
        system_instruction="Be brief.",
        tools=[WEATHER],
    )

    response = await call(llm, request)

    assert response.content == types.Content(
        role="model", parts=[types.Part(text="Your name is Alice.")]
    )
    assert response.finish_reason == types.FinishReason.STOP
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 11
    assert response.usage_metadata.total_token_count == 14
    assert response.model_version == "gemini-test-001"
    assert response.partial is None and response.error_code is None

    [sent] = server.received
    assert _unversioned(sent.path) == "/models/gemini-test:generateContent"
    assert sent.headers["x-goog-api-key"] == "test-key"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("google-genai-sdk/")
    assert sent.body["contents"] == [
        {"role": "user", "parts": [{"text": "My name is Alice."}]},
        {"role": "model", "parts": [{"text": "Nice to meet you, Alice!"}]},
        {"role": "user", "parts": [{"text": "Name?"}]},
    ]
    assert sent.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    [tool] = sent.body["tools"]
    [declaration] = tool["functionDeclarations"]
    assert declaration["name"] == "get_weather"
    assert declaration["parameters"]["required"] == ["city"]


@pytest.mark.asyncio
async def test_gemini_without_tools_or_instruction_sends_only_contents(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key")
    server.default = Reply(body=gemini_answer("hi"))
    await call(Gemini("models/gemini-test", base_url=server.url), LlmRequest(contents=[user("x")]))
    [sent] = server.received
    assert _unversioned(sent.path) == "/models/gemini-test:generateContent"
    assert sent.headers["x-goog-api-key"] == "gemini-key"
    assert "tools" not in sent.body and "systemInstruction" not in sent.body


@pytest.mark.asyncio
async def test_gemini_model_string_and_base_url_from_the_environment(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    monkeypatch.setenv("OPENADK_GEMINI_BASE_URL", server.url)
    server.default = Reply(body=gemini_answer("from env"))
    llm = resolve_model("gemini-2.0-flash")
    response = await call(llm, LlmRequest(model=llm.model, contents=[user("x")]))
    assert response.content is not None and response.content.parts
    assert response.content.parts[0].text == "from env"
    assert _unversioned(server.received[0].path) == "/models/gemini-2.0-flash:generateContent"


@pytest.mark.asyncio
async def test_gemini_vertex_settings_need_no_api_key(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    server.default = Reply(body=gemini_answer("vertex"))
    response = await call(
        Gemini("gemini-test", base_url=server.url), LlmRequest(contents=[user("x")])
    )
    assert response.content is not None and response.content.parts
    assert response.content.parts[0].text == "vertex"
    [sent] = server.received
    assert "x-goog-api-key" not in sent.headers
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "x"}]}]


@pytest.mark.asyncio
async def test_gemini_streaming_yields_partials_then_the_whole_answer(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo!"}]}}]},
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": {"promptTokenCount": 2, "totalTokenCount": 5},
            "modelVersion": "gemini-test-001",
        },
    ]
    sse = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    server.default = Reply(body=sse, content_type="text/event-stream")
    llm = Gemini("gemini-test", base_url=server.url, stream=True)
    try:
        responses = await collect(llm, LlmRequest(contents=[user("hi")]))
    finally:
        await llm.close()

    assert (
        _unversioned(server.received[0].path) == "/models/gemini-test:streamGenerateContent?alt=sse"
    )
    *partials, final = responses
    assert [r.partial for r in partials] == [True, True, True]
    assert partials[0].content is not None and partials[0].content.parts
    assert partials[0].content.parts[0].text == "Hel"
    assert final.partial is None
    assert final.content == types.Content(role="model", parts=[types.Part(text="Hello!")])
    assert final.finish_reason == types.FinishReason.STOP
    assert final.usage_metadata is not None and final.usage_metadata.total_token_count == 5
    assert final.model_version == "gemini-test-001"


@pytest.mark.asyncio
async def test_gemini_withheld_answer_is_an_error_response_not_an_exception(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.default = Reply(body={"candidates": [{"finishReason": "SAFETY", "index": 0}]})
    response = await call(
        Gemini("gemini-test", base_url=server.url), LlmRequest(contents=[user("x")])
    )
    assert response.content is None
    assert response.finish_reason == types.FinishReason.SAFETY
    assert response.error_code == "SAFETY"


@pytest.mark.asyncio
async def test_gemini_without_credentials_says_how_to_fix_it(server: FakeServer) -> None:
    llm = Gemini("gemini-test", base_url=server.url)
    with pytest.raises(ModelError, match="GOOGLE_API_KEY") as info:
        await call(llm, LlmRequest(contents=[user("x")]))
    assert "OPENADK_MODEL=offline" in str(info.value)
    assert "\n" not in str(info.value)
    assert server.received == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(500, {"error": {"code": 500, "message": "boom inside", "status": "INTERNAL"}}),
            r"HTTP 500 INTERNAL .*boom inside.*retry later",
        ),
        (
            Reply(
                400,
                {
                    "error": {
                        "code": 400,
                        "message": "API key not valid. Please pass a valid API key.",
                        "status": "INVALID_ARGUMENT",
                    }
                },
            ),
            r"HTTP 400 INVALID_ARGUMENT .*API key not valid",
        ),
        (
            Reply(401, {"error": {"code": 401, "message": "no", "status": "UNAUTHENTICATED"}}),
            r"HTTP 401 .*check GOOGLE_API_KEY",
        ),
        (Reply(502, b"<html>Bad gateway</html>", "text/html"), r"HTTP 502 .*Bad gateway"),
        (
            Reply(200, b"<html>this is not JSON", "text/html"),
            r"not a valid GenerateContentResponse",
        ),
        (Reply(200, {}), r"without any candidate"),
        (Reply(200, [1, 2]), r"without any candidate"),
        (Reply(200, {"candidates": "nope"}), r"without any candidate"),
    ],
    ids=["500", "400", "401", "502-html", "not-json", "empty-object", "array", "bad-candidates"],
)
async def test_gemini_failures_become_model_errors(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, reply: Reply, expected: str
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.default = reply
    with pytest.raises(ModelError, match=expected) as info:
        await call(Gemini("gemini-test", base_url=server.url), LlmRequest(contents=[user("x")]))
    assert len(server.received) == 1  # no silent retries
    if reply.status != 200:
        assert info.value.__cause__ is not None


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["closed-port", "localhost:1234"])
async def test_gemini_unreachable_endpoint_is_a_model_error(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    if url == "closed-port":
        url = closed_port_url()
    with pytest.raises(ModelError, match="Cannot reach the Gemini endpoint") as info:
        await call(Gemini("gemini-test", base_url=url), LlmRequest(contents=[user("x")]))
    assert url in str(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.asyncio
async def test_gemini_timeout_is_a_model_error(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.default = Reply(body=gemini_answer("late"), delay=NEVER)
    llm = Gemini("gemini-test", base_url=server.url, timeout=0.3)
    with pytest.raises(ModelError, match=r"did not answer within 0.3 s"):
        await asyncio.wait_for(call(llm, LlmRequest(contents=[user("x")])), HANG_GUARD)


@pytest.mark.asyncio
async def test_gemini_keeps_no_connection_between_calls(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.default = Reply(body=gemini_answer("ok"))
    llm = Gemini("gemini-test", base_url=server.url)
    for _ in range(3):
        await collect(llm, LlmRequest(contents=[user("x")]))
        assert server.wait_connections_closed() == 0
    assert len(server.received) == 3
    await llm.close()
    await llm.close()  # idempotent
    await collect(llm, LlmRequest(contents=[user("again")]))  # usable after close
    await llm.close()
    assert len(server.received) == 4


def test_gemini_works_from_one_event_loop_to_the_next(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.default = Reply(body=gemini_answer("ok"))
    llm = Gemini("gemini-test", base_url=server.url)
    asyncio.run(collect(llm, LlmRequest(contents=[user("first loop")])))
    responses = asyncio.run(collect(llm, LlmRequest(contents=[user("second loop")])))
    asyncio.run(llm.close())
    assert len(responses) == 1 and len(server.received) == 2
    assert server.wait_connections_closed() == 0


# --------------------------------------------------------------------------------------------
# OpenAI-compatible


@pytest.mark.asyncio
async def test_openai_sends_messages_and_maps_a_text_answer(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server.default = Reply(body=openai_answer("Your name is Alice."))
    llm = OpenAICompatible("openai/test-model", base_url=server.url + "/v1/")
    request = LlmRequest(
        model="openai/test-model",
        contents=CONVERSATION,
        system_instruction="Be brief.",
        tools=[WEATHER],
    )

    response = await call(llm, request)

    assert response.content == types.Content(
        role="model", parts=[types.Part(text="Your name is Alice.")]
    )
    assert response.finish_reason == types.FinishReason.STOP
    assert response.model_version == "test-model-q4"
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 20
    assert response.usage_metadata.candidates_token_count == 5
    assert response.usage_metadata.total_token_count == 25

    [sent] = server.received
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body["model"] == "test-model"
    assert sent.body["stream"] is False
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Alice."},
        {"role": "assistant", "content": "Nice to meet you, Alice!"},
        {"role": "user", "content": "Name?"},
    ]
    assert sent.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]


@pytest.mark.asyncio
async def test_openai_base_url_from_env_and_no_key_sends_no_authorization(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.default = Reply(body=openai_answer("hi"))
    llm = resolve_model("openai/llama3.2")
    await call(llm, LlmRequest(model=llm.model, contents=[user("x")]))
    [sent] = server.received
    assert sent.path == "/v1/chat/completions"
    assert "authorization" not in sent.headers
    assert sent.body["model"] == "llama3.2"
    assert "tools" not in sent.body
    assert sent.body["messages"] == [{"role": "user", "content": "x"}]


@pytest.mark.asyncio
async def test_openai_tool_calls_become_function_calls(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.default = Reply(
        body=openai_answer(
            None,
            tool_calls=[
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_def",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                },
            ],
        )
    )
    response = await call(
        OpenAICompatible("openai/m"), LlmRequest(contents=[user("Weather?")], tools=[WEATHER])
    )
    assert response.content is not None and response.content.parts
    first, second = response.content.parts
    assert first.function_call == types.FunctionCall(
        id="call_abc", name="get_weather", args={"city": "Paris"}
    )
    assert second.function_call == types.FunctionCall(id="call_def", name="get_weather", args={})
    assert response.finish_reason == types.FinishReason.STOP


@pytest.mark.asyncio
async def test_openai_function_responses_are_sent_as_tool_messages(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.default = Reply(body=openai_answer("It is sunny in Paris."))
    contents = [
        user("Weather in Paris?"),
        types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(
                        id="call_abc", name="get_weather", args={"city": "Paris"}
                    )
                )
            ],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id="call_abc", name="get_weather", response={"sky": "sunny"}
                    )
                )
            ],
        ),
    ]
    response = await call(OpenAICompatible("openai/m"), LlmRequest(contents=contents))
    assert response.content is not None and response.content.parts
    assert response.content.parts[0].text == "It is sunny in Paris."
    [sent] = server.received
    assistant, tool = sent.body["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert tool == {"role": "tool", "tool_call_id": "call_abc", "content": '{"sky": "sunny"}'}


def test_calls_without_ids_are_paired_with_their_responses_by_name() -> None:
    call_part = types.Part(function_call=types.FunctionCall(name="f", args={"a": 1}))
    answer = types.Part(function_response=types.FunctionResponse(name="f", response={"r": 2}))
    image = types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG"))
    messages = to_messages(
        [
            types.Content(role="user", parts=[types.Part(text="look"), image]),
            types.Content(role="model", parts=[types.Part(text="hmm", thought=True), call_part]),
            types.Content(role="user", parts=[answer]),
        ]
    )
    assert messages[0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
        ],
    }
    call_id = messages[1]["tool_calls"][0]["id"]
    assert messages[1]["content"] is None  # the thought is not sent back
    assert messages[2] == {"role": "tool", "tool_call_id": call_id, "content": '{"r": 2}'}


def test_parts_the_chat_format_cannot_carry_are_refused() -> None:
    video = types.Part(file_data=types.FileData(file_uri="gs://b/v.mp4", mime_type="video/mp4"))
    with pytest.raises(ModelError, match="file_data"):
        to_messages([types.Content(role="user", parts=[video])])


@pytest.mark.asyncio
async def test_openai_reasoning_is_kept_as_a_thought(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    answer = openai_answer("42")
    answer["choices"][0]["message"]["reasoning_content"] = "Six times seven."
    server.default = Reply(body=answer)
    response = await call(OpenAICompatible("openai/m"), LlmRequest(contents=[user("?")]))
    assert response.content is not None
    assert response.content.parts == [
        types.Part(text="Six times seven.", thought=True),
        types.Part(text="42"),
    ]


@pytest.mark.asyncio
async def test_openai_without_an_endpoint_says_how_to_fix_it() -> None:
    with pytest.raises(ModelError, match="OPENAI_BASE_URL") as info:
        await call(OpenAICompatible("openai/m"), LlmRequest(contents=[user("x")]))
    assert "OPENADK_MODEL=offline" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(
                404,
                {
                    "error": {
                        "message": "The model `m` does not exist.",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            ),
            r"HTTP 404: The model `m` does not exist.*check the model name",
        ),
        (Reply(404, {"error": "model 'm' not found"}), r"HTTP 404: model 'm' not found"),
        (
            Reply(400, {"object": "error", "message": "bad tools", "type": "BadRequestError"}),
            r"HTTP 400: bad tools",
        ),
        (
            Reply(401, {"error": {"message": "Invalid key"}}),
            r"HTTP 401: Invalid key.*OPENAI_API_KEY",
        ),
        (Reply(500, b"Internal Server Error", "text/plain"), r"HTTP 500: Internal Server Error"),
        (Reply(200, b"<html>not json", "text/html"), r"not JSON: '<html>not json'"),
        (Reply(200, [1]), r"expected a JSON object"),
        (Reply(200, {"object": "chat.completion"}), r"no choices"),
        (Reply(200, {"choices": []}), r"no choices"),
        (Reply(200, {"choices": [{"index": 0}]}), r"no message"),
        (
            Reply(
                200,
                openai_answer(
                    None,
                    tool_calls=[{"id": "c", "function": {"name": "f", "arguments": "{not json"}}],
                ),
            ),
            r"arguments of tool call 'f' are not a JSON object",
        ),
    ],
    ids=[
        "404-openai",
        "404-ollama",
        "400-vllm",
        "401",
        "500-text",
        "not-json",
        "array",
        "no-choices",
        "empty-choices",
        "no-message",
        "bad-arguments",
    ],
)
async def test_openai_failures_become_model_errors(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, reply: Reply, expected: str
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.default = reply
    with pytest.raises(ModelError, match=expected) as info:
        await call(OpenAICompatible("openai/m"), LlmRequest(contents=[user("x")]))
    assert f"{server.url}/v1/chat/completions" in str(info.value)
    assert len(server.received) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["closed-port", "localhost:11434/v1", "http://[::1/v1"])
async def test_openai_unreachable_endpoint_is_a_model_error(url: str) -> None:
    if url == "closed-port":
        url = closed_port_url() + "/v1"
    with pytest.raises(ModelError, match="Cannot reach the OpenAI-compatible endpoint") as info:
        await call(OpenAICompatible("openai/m", base_url=url), LlmRequest(contents=[user("x")]))
    assert "is running" in str(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.asyncio
async def test_openai_timeout_is_a_model_error(server: FakeServer) -> None:
    server.default = Reply(body=openai_answer("late"), delay=NEVER)
    llm = OpenAICompatible("openai/m", base_url=server.url + "/v1", timeout=0.3)
    with pytest.raises(ModelError, match=r"did not answer within 0.3 s"):
        await asyncio.wait_for(call(llm, LlmRequest(contents=[user("x")])), HANG_GUARD)


@pytest.mark.asyncio
async def test_openai_empty_message_is_an_error_response(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.default = Reply(body=openai_answer(""))
    response = await call(OpenAICompatible("openai/m"), LlmRequest(contents=[user("x")]))
    assert response.content is None
    assert response.error_code == "EMPTY_RESPONSE"


@pytest.mark.asyncio
async def test_openai_keeps_no_connection_between_calls(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.default = Reply(body=openai_answer("ok"))
    llm = OpenAICompatible("openai/m", headers={"X-Extra": "1"}, extra_body={"temperature": 0})
    await collect(llm, LlmRequest(contents=[user("x")]))
    assert server.wait_connections_closed() == 0
    await collect(llm, LlmRequest(contents=[user("y")]))
    assert server.received[1].headers["x-extra"] == "1"
    assert server.received[1].body["temperature"] == 0
    await llm.close()
    await llm.close()  # idempotent
    assert server.wait_connections_closed() == 0


def test_openai_works_from_one_event_loop_to_the_next(server: FakeServer) -> None:
    server.default = Reply(body=openai_answer("ok"))
    llm = OpenAICompatible("openai/m", base_url=server.url + "/v1")
    asyncio.run(collect(llm, LlmRequest(contents=[user("first loop")])))
    responses = asyncio.run(collect(llm, LlmRequest(contents=[user("second loop")])))
    asyncio.run(llm.close())
    assert len(responses) == 1 and len(server.received) == 2


# --------------------------------------------------------------------------------------------
# End to end: Agent + Runner + session service


async def run_turn(runner: Runner, text: str) -> None:
    async for _ in runner.run_async(
        user_id="u", session_id="s", new_message=types.UserContent(parts=[types.Part(text=text)])
    ):
        pass


@pytest.mark.asyncio
async def test_agent_with_gemini_remembers_the_first_turn(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.replies = [
        Reply(body=gemini_answer("Nice to meet you, Alice!")),
        Reply(body=gemini_answer("Your name is Alice.")),
    ]
    service = InMemorySessionService()
    agent = Agent(
        name="a",
        model=Gemini("gemini-test", base_url=server.url),
        instruction="You are helpful.",
    )
    runner = Runner(app_name="app", agent=agent, session_service=service)
    await service.create_session(app_name="app", user_id="u", session_id="s")

    await run_turn(runner, "My name is Alice.")
    await run_turn(runner, "What is my name?")
    await runner.close()

    first, second = server.received
    assert first.body["contents"] == [
        {"role": "user", "parts": [{"text": "My name is Alice."}]},
    ]
    assert second.body["contents"] == [
        {"role": "user", "parts": [{"text": "My name is Alice."}]},
        {"role": "model", "parts": [{"text": "Nice to meet you, Alice!"}]},
        {"role": "user", "parts": [{"text": "What is my name?"}]},
    ]
    assert second.body["systemInstruction"]["parts"] == [{"text": "You are helpful."}]

    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None
    texts = [
        (e.author, e.content.parts[0].text if e.content and e.content.parts else None)
        for e in session.events
    ]
    assert texts == [
        ("user", "My name is Alice."),
        ("a", "Nice to meet you, Alice!"),
        ("user", "What is my name?"),
        ("a", "Your name is Alice."),
    ]
    reply = session.events[-1]
    assert reply.model_version == "gemini-test-001"
    assert reply.finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata is not None and reply.usage_metadata.total_token_count == 14
    assert server.wait_connections_closed() == 0


@pytest.mark.asyncio
async def test_agent_records_a_failed_gemini_call_in_the_session(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.default = Reply(
        503, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
    )
    service = InMemorySessionService()
    agent = Agent(name="a", model=Gemini("gemini-test", base_url=server.url))
    runner = Runner(app_name="app", agent=agent, session_service=service, auto_create_session=True)
    await run_turn(runner, "hello")
    await runner.close()
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None
    error = session.events[-1]
    assert error.error_code == "MODEL_ERROR"
    assert error.error_message is not None and "HTTP 503" in error.error_message


@pytest.mark.asyncio
async def test_agent_with_an_openai_model_string_remembers_the_first_turn(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.replies = [Reply(body=openai_answer("Hi Bob!")), Reply(body=openai_answer("Bob."))]
    service = InMemorySessionService()
    runner = Runner(
        app_name="app",
        agent=Agent(name="a", model="openai/test-model", instruction="Be brief."),
        session_service=service,
        auto_create_session=True,
    )
    await run_turn(runner, "I am Bob.")
    await run_turn(runner, "Who am I?")
    await runner.close()
    assert server.received[1].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am Bob."},
        {"role": "assistant", "content": "Hi Bob!"},
        {"role": "user", "content": "Who am I?"},
    ]
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None
    assert [e.author for e in session.events] == ["user", "a", "user", "a"]
    last = session.events[-1]
    assert last.content is not None and last.content.parts
    assert last.content.parts[0].text == "Bob."


def test_sync_runner_with_gemini_over_several_turns(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runner.run drives each turn on a new event loop in a thread.
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    server.replies = [Reply(body=gemini_answer("one")), Reply(body=gemini_answer("two"))]
    service = InMemorySessionService()
    runner = Runner(
        app_name="app",
        agent=Agent(name="a", model=Gemini("gemini-test", base_url=server.url)),
        session_service=service,
        auto_create_session=True,
    )
    for text in ("first", "second"):
        events = list(
            runner.run(
                user_id="u",
                session_id="s",
                new_message=types.UserContent(parts=[types.Part(text=text)]),
            )
        )
        assert events and events[-1].error_code is None
    asyncio.run(runner.close())
    assert len(server.received[1].body["contents"]) == 3
    assert server.wait_connections_closed() == 0


@pytest.mark.asyncio
async def test_agent_with_a_gemini_model_string_and_env_endpoint(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model string is resolved again on every turn; nothing may leak from the dropped objects.
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    monkeypatch.setenv("OPENADK_GEMINI_BASE_URL", server.url)
    server.replies = [Reply(body=gemini_answer("one")), Reply(body=gemini_answer("two"))]
    service = InMemorySessionService()
    runner = Runner(
        app_name="app",
        agent=Agent(name="a", model="gemini-test"),
        session_service=service,
        auto_create_session=True,
    )
    await run_turn(runner, "first")
    await run_turn(runner, "second")
    assert [_unversioned(r.path) for r in server.received] == [
        "/models/gemini-test:generateContent",
        "/models/gemini-test:generateContent",
    ]
    assert len(server.received[1].body["contents"]) == 3
    assert server.wait_connections_closed() == 0
