"""From a model string to a model object."""

from __future__ import annotations

import importlib
import os
import re

from openadk.models._base import BaseLlm

__all__ = ["MODEL_ENV_VAR", "resolve_model"]

MODEL_ENV_VAR = "OPENADK_MODEL"
"""When set, every agent uses this model string instead of its own (e.g. ``offline``)."""

# (pattern on the model string, "module:Class"), first match wins; imported only when chosen.
_REGISTRY: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^offline(/.*)?$"), "openadk.models._offline:OfflineModel"),
    (re.compile(r"^(models/)?gemini-.*$"), "openadk.models._gemini:Gemini"),
    (re.compile(r"^openai/.+$"), "openadk.models._openai_compat:OpenAICompatible"),
]


def resolve_model(model: str | BaseLlm) -> BaseLlm:
    """Returns the model object for ``model``.

    A `BaseLlm` is returned as is. A string is first replaced by ``$OPENADK_MODEL`` when that is
    set, then matched against the registry.

    Raises:
        ValueError: No model class handles the string.
    """
    if isinstance(model, BaseLlm):
        return model
    chosen = os.environ.get(MODEL_ENV_VAR) or model
    for pattern, target in _REGISTRY:
        if pattern.match(chosen):
            module_name, _, class_name = target.partition(":")
            cls: type[BaseLlm] = getattr(importlib.import_module(module_name), class_name)
            return cls(chosen)
    known = ", ".join(p.pattern for p, _ in _REGISTRY)
    raise ValueError(
        f"Unknown model {chosen!r}. Known model patterns: {known}. "
        f"Set {MODEL_ENV_VAR}=offline to run without a model key."
    )
