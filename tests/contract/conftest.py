from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.contract.backends import BACKENDS, Backend, Gap

_GAP = pytest.StashKey[Gap]()


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    test_name = request.node.originalname
    gap = backend.known_gaps.get(test_name)
    if gap is not None:
        request.node.stash[_GAP] = gap
        request.applymarker(pytest.mark.xfail(reason=gap.reason, raises=gap.raises, strict=True))
    return backend


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turns a known gap's expected failure into a failure when the message is not the gap's.

    ``xfail(raises=...)`` checks only the exception's type; a ValueError from a broken backend
    would otherwise pass for the gap's ValueError.
    """
    outcome = yield
    gap = item.stash.get(_GAP, None)
    if gap is None or call.when != "call" or call.excinfo is None:
        return
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    message = str(call.excinfo.value)
    if hasattr(report, "wasxfail") and not re.search(gap.match, message):
        del report.wasxfail
        report.outcome = "failed"
        report.longrepr = (
            f"known gap expected {gap.raises.__name__} matching {gap.match!r}, "
            f"got {call.excinfo.exconly()}"
        )
