"""openadk: a session store for AI agents, compatible with google-adk's sessions package."""

__version__ = "0.1.0"

__all__ = ["__version__"]
