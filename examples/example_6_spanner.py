#!/usr/bin/env python3
"""Agent with Cloud Spanner session storage."""

import asyncio
from openadk import Agent
from openadk.sessions import DatabaseSessionService
from openadk.runners import Runner
from google.genai import types

async def main():
    # Create Cloud Spanner session service
    # Install: pip install sqlalchemy-spanner
    # Format: spanner+spanner://projects/{project}/instances/{instance}/databases/{database}
    session_service = DatabaseSessionService(
        db_url="spanner+spanner://projects/my-project/instances/my-instance/databases/my-database"
    )
    
    agent = Agent(
        name="spanner_agent",
        model="gemini-1.5-flash",
        instruction="You are a helpful assistant."
    )
    
    runner = Runner(
        app_name="spanner_app",
        agent=agent,
        session_service=session_service
    )
    
    # Create and use session
    session = await session_service.create_session(
        app_name="spanner_app",
        user_id="user123",
        session_id="session456"
    )
    
    async for event in runner.run_async(
        user_id="user123",
        session_id="session456",
        new_message=types.UserContent(parts=[types.Part(text="Hello!")])
    ):
        if event.content:
            print(event.content)
    
    await session_service.close()

if __name__ == "__main__":
    asyncio.run(main())
