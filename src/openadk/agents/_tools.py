"""Plain Python functions as agent tools: their schema comes from type hints and the docstring."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints

from google.genai import types
from pydantic import ValidationError, create_model

from openadk.sessions._state import State

if TYPE_CHECKING:
    from openadk.sessions import Session

__all__ = ["FunctionTool", "ToolContext"]

_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


@dataclass
class ToolContext:
    """What a tool may see and change while it runs.

    Attributes:
        state: The session state; writes are stored with the tool's response event (``temp:``
            keys last for this invocation only).
        function_call_id: The id of the model's function call being answered.
        invocation_id: The current invocation.
        agent_name: The agent that called the tool.
        session: The live session (read it; change state through ``state``).
    """

    state: State
    function_call_id: str | None
    invocation_id: str
    agent_name: str
    session: Session


def _docstring_parts(func: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(func) or ""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    args: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            if line and not line.startswith(" "):
                break
            match = _ARG_LINE.match(line)
            if match:
                args[match.group(1)] = match.group(2).strip()
    return summary, args


class FunctionTool:
    """Wraps a function (sync or async) so a model can call it.

    Parameters named ``tool_context`` receive a `ToolContext` and are hidden from the model. The
    other parameters must have type hints; arguments from the model are validated against them.
    A return value that is not a dict is sent to the model as ``{"result": value}``.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        """Wraps ``func``.

        Raises:
            TypeError: ``func`` is not callable, or a parameter has no type hint.
        """
        if not callable(func):
            raise TypeError(f"A tool must be a function, got {type(func).__name__}.")
        self.func = func
        self.name: str = getattr(func, "__name__", type(func).__name__)
        summary, arg_docs = _docstring_parts(func)
        hints = get_type_hints(func)
        fields: dict[str, Any] = {}
        self._wants_context = False
        for param in inspect.signature(func).parameters.values():
            if param.name == "tool_context":
                self._wants_context = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name not in hints:
                raise TypeError(
                    f"Tool {self.name!r}: parameter {param.name!r} needs a type hint so the "
                    f"model knows what to pass."
                )
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hints[param.name], default)
        self._arguments = create_model(f"{self.name}_arguments", **fields)
        schema = self._arguments.model_json_schema()
        schema.pop("title", None)
        for name, prop in schema.get("properties", {}).items():
            prop.pop("title", None)
            if name in arg_docs:
                prop["description"] = arg_docs[name]
        self.declaration = types.FunctionDeclaration(
            name=self.name, description=summary or None, parameters_json_schema=schema
        )

    async def run(self, args: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        """Validates ``args``, calls the function, and returns its result as a dict.

        Raises:
            ValueError: The arguments do not match the function's parameters.
        """
        try:
            validated = self._arguments.model_validate(args)
        except ValidationError as exc:
            raise ValueError(f"Invalid arguments for tool {self.name!r}: {exc}") from exc
        kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        if self._wants_context:
            kwargs["tool_context"] = context
        result = self.func(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, dict) else {"result": result}
