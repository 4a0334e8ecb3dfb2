"""Models: the interface agents call, and the model classes behind model strings."""

from openadk.models._base import BaseLlm, LlmRequest, LlmResponse, ModelError
from openadk.models._gemini import Gemini
from openadk.models._offline import OFFLINE_MARKER, OfflineModel
from openadk.models._openai_compat import OpenAICompatible
from openadk.models._registry import MODEL_ENV_VAR, resolve_model

__all__ = [
    "MODEL_ENV_VAR",
    "OFFLINE_MARKER",
    "BaseLlm",
    "Gemini",
    "LlmRequest",
    "LlmResponse",
    "ModelError",
    "OfflineModel",
    "OpenAICompatible",
    "resolve_model",
]
