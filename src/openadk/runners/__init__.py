"""Runners: drive an agent through a session, one turn at a time."""

from openadk.runners._runner import Runner

__all__ = ["Runner"]
