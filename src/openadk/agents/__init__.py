"""Agents: what a runner drives through a session."""

from openadk.agents._instructions import fill_instruction
from openadk.agents._llm_agent import InvocationContext, LlmAgent
from openadk.agents._tools import FunctionTool, ToolContext

Agent = LlmAgent

__all__ = [
    "Agent",
    "FunctionTool",
    "InvocationContext",
    "LlmAgent",
    "ToolContext",
    "fill_instruction",
]
