import asyncio
from openadk import Agent
from openadk.sessions import InMemorySessionService
from openadk.runners import Runner

# Create session service
session_service = InMemorySessionService()

# Create agent
agent = Agent(
    name="session_agent",
    description="An agent with session management",
    model="gemini-1.5-flash",
    instruction="You are a helpful assistant that remembers our conversation."
)

# Create runner with session service
runner = Runner(
    app_name="session_app",
    agent=agent,
    session_service=session_service
)

async def main():
    from google.genai import types
    
    # Create session
    session = await session_service.create_session(
        app_name="session_app",
        user_id="user123",
        session_id="session456"
    )
    
    # First interaction
    async for event in runner.run_async(
        user_id="user123",
        session_id=session.id,
        new_message=types.UserContent(parts=[types.Part(text="My name is Alice")])
    ):
        if event.content and event.content.parts:
            for part in event.content.parts:
                if part.text:
                    print(part.text)
    
    # Second interaction - agent remembers
    async for event in runner.run_async(
        user_id="user123",
        session_id=session.id,
        new_message=types.UserContent(parts=[types.Part(text="What's my name?")])
    ):
        if event.content and event.content.parts:
            for part in event.content.parts:
                if part.text:
                    print(part.text)

asyncio.run(main())
