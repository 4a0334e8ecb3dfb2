"""Agents: what a runner drives through a session."""

from openadk.agents._instructions import fill_instruction
from openadk.agents._llm_agent import InvocationContext, LlmAgent

Agent = LlmAgent

__all__ = ["Agent", "InvocationContext", "LlmAgent", "fill_instruction"]
