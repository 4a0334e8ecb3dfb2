import asyncio
from openadk.sessions import VertexAiSessionService
from openadk import Agent
from openadk.runners import Runner

# Create Vertex AI session service
session_service = VertexAiSessionService(
    project_id="your-project-id",
    location="us-central1"
)

# Create agent
agent = Agent(
    name="persistent_agent",
    model="gemini-1.5-flash",
    instruction="You are a helpful assistant."
)

# Create runner
runner = Runner(
    app_name="vertex_app",
    agent=agent,
    session_service=session_service
)

async def main():
    from google.genai import types
    
    # Create session
    session = await session_service.create_session(
        app_name="vertex_app",
        user_id="user123",
        session_id="session456"
    )
    
    # Use session
    async for event in runner.run_async(
        user_id="user123",
        session_id=session.id,
        new_message=types.UserContent(parts=[types.Part(text="Hello")])
    ):
        if event.content and event.content.parts:
            for part in event.content.parts:
                if part.text:
                    print(part.text)

asyncio.run(main())
