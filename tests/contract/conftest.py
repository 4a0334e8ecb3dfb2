from __future__ import annotations

import pytest

from tests.contract.backends import BACKENDS, Backend


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    test_name = request.node.originalname
    reason = backend.known_gaps.get(test_name)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    return backend
