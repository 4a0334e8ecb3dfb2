import asyncio
from openadk.sessions import InMemorySessionService

async def main():
    session_service = InMemorySessionService()
    
    # Create session
    session = await session_service.create_session(
        app_name="state_app",
        user_id="user123",
        session_id="session456"
    )
    
    # Get session state
    state = session.state
    
    # Update state
    state["user_name"] = "Alice"
    state["preferences"] = {"theme": "dark"}
    
    # Note: State is automatically persisted when events are appended to the session
    # To manually update state, you can create a new session with updated state:
    updated_session = await session_service.create_session(
        app_name="state_app",
        user_id="user123",
        session_id="session456",
        state=state
    )
    
    # Retrieve session later
    retrieved_session = await session_service.get_session(
        app_name="state_app",
        user_id="user123",
        session_id="session456"
    )
    
    if retrieved_session:
        print(f"Retrieved session: {retrieved_session.id}")
        print(f"State: {retrieved_session.state}")

asyncio.run(main())
