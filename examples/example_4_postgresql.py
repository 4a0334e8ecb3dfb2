#!/usr/bin/env python3
"""Agent with PostgreSQL session storage."""

import asyncio
from openadk import Agent
from openadk.sessions import DatabaseSessionService
from openadk.runners import Runner
from google.genai import types

async def main():
    # Create PostgreSQL session service
    # Install: pip install asyncpg
    session_service = DatabaseSessionService(
        db_url="postgresql+asyncpg://user:password@localhost:5432/adk_sessions"
    )
    
    # Alternative with connection pooling
    session_service = DatabaseSessionService(
        db_url="postgresql+asyncpg://user:password@localhost:5432/adk_sessions",
        pool_size=10,
        max_overflow=20
    )
    
    agent = Agent(
        name="postgres_agent",
        model="gemini-1.5-flash",
        instruction="You are a helpful assistant."
    )
    
    runner = Runner(
        app_name="postgres_app",
        agent=agent,
        session_service=session_service
    )
    
    # Create session
    session = await session_service.create_session(
        app_name="postgres_app",
        user_id="user123",
        session_id="session456"
    )
    
    # Use session
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
