"""The session-service contract test suite, for openadk's backends and anyone writing one.

Subclass `SessionServiceContract` in a pytest module and provide a ``make_service`` fixture that
returns an async factory of fresh services on your storage::

    import pytest
    from openadk.testing import SessionServiceContract

    class TestMyBackend(SessionServiceContract):
        @pytest.fixture
        def make_service(self):
            async def make(**kwargs):
                return MySessionService(url, **kwargs)
            return make

The keyword arguments the suite passes are ``on_stale="merge"`` and ``clock=`` (a function
returning Unix seconds that the service measures session expiry with).

Needs pytest and pytest-asyncio (``pip install openadk[testing]``). Every test uses fresh uuid4
app names, so a shared database never needs wiping.
"""

from openadk.testing._contract import ServiceFactory, SessionServiceContract

__all__ = ["ServiceFactory", "SessionServiceContract"]
