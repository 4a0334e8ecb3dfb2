import asyncio
from openadk.sessions import InMemorySessionService
from openadk import Agent
from openadk.runners import Runner

session_service = InMemorySessionService()
agent = Agent(name="multi_session_agent", model="gemini-1.5-flash")
runner = Runner(
    app_name="multi_session_app",
    agent=agent,
    session_service=session_service
)

async def handle_user(user_id: str, message: str):
    """Handle message for a specific user."""
    session_id = f"user_{user_id}"
    
    # Get or create session for user
    session = await session_service.get_session(
        app_name="multi_session_app",
        user_id=user_id,
        session_id=session_id
    )
    
    if not session:
        session = await session_service.create_session(
            app_name="multi_session_app",
            user_id=user_id,
            session_id=session_id
        )
    
    # Process message
    from google.genai import types
    
    async for event in runner.run_async(
        user_id=user_id,
        session_id=session.id,
        new_message=types.UserContent(parts=[types.Part(text=message)])
    ):
        if event.content and event.content.parts:
            for part in event.content.parts:
                if part.text:
                    return part.text
    return None

async def main():
    # Handle multiple users
    await handle_user("alice", "Hello")
    await handle_user("bob", "Hi there")
    await handle_user("alice", "Remember me?")  # Agent remembers Alice

asyncio.run(main())
