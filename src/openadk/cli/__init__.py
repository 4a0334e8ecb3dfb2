"""The ``openadk`` command line."""

from openadk.cli._main import main

__all__ = ["main"]
