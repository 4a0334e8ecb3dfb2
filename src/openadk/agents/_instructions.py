"""Filling ``{key}`` placeholders of an agent's instruction from session state."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["fill_instruction"]

# A run of opening braces not preceded by `$`, `\` or another `{`, a name, closing braces.
_PLACEHOLDER = re.compile(r"(?<![$\\{])\{+([^{}]*)\}+")
_NAME = re.compile(r"^(?:(?:app|user|temp):)?[A-Za-z_][A-Za-z0-9_]*$")


def fill_instruction(template: str, state: Mapping[str, Any], agent_name: str) -> str:
    r"""Replaces ``{key}`` with ``str(state[key])`` and ``{key?}`` with it or ``''``.

    Keys may carry the ``app:``, ``user:`` or ``temp:`` prefix; spaces inside the braces and extra
    braces are ignored; ``None`` becomes ``''``. Text that is not a valid key (``{a-b}``,
    ``{x:y}``) and placeholders after ``$`` or ``\`` are left as they are.

    Raises:
        KeyError: A required key is missing from the state.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        optional = name.endswith("?")
        if optional:
            name = name[:-1]
        if not _NAME.match(name):
            return match.group(0)
        if name not in state:
            if optional:
                return ""
            raise KeyError(f"Context variable not found: `{name}` in agent '{agent_name}'.")
        value = state[name]
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(substitute, template)
