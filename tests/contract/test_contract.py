"""The contract suite, run on every backend in tests/contract/backends.py."""

from __future__ import annotations

import pytest

from openadk.testing import ServiceFactory, SessionServiceContract
from tests.contract.backends import Backend


class TestContract(SessionServiceContract):
    @pytest.fixture
    def make_service(self, backend: Backend) -> ServiceFactory:
        return backend.make
