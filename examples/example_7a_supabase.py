#!/usr/bin/env python3
"""Agent with Supabase session storage."""

import asyncio
from openadk import Agent
from openadk.sessions import DatabaseSessionService
from openadk.runners import Runner
from google.genai import types

async def main():
    # Create Supabase session service
    # Supabase uses PostgreSQL, so use PostgreSQL driver
    # Install: pip install asyncpg
    # Get connection string from Supabase dashboard: Settings > Database > Connection string
    session_service = DatabaseSessionService(
        db_url="postgresql+asyncpg://postgres:[YOUR-PASSWORD]@[YOUR-PROJECT-REF].supabase.co:5432/postgres"
    )
    
    # Alternative: Use connection pooling for better performance
    session_service = DatabaseSessionService(
        db_url="postgresql+asyncpg://postgres:[YOUR-PASSWORD]@[YOUR-PROJECT-REF].supabase.co:5432/postgres",
        pool_size=10,
        max_overflow=20
    )
    
    # Alternative: Use environment variable for security
    import os
    session_service = DatabaseSessionService(
        db_url=os.getenv("SUPABASE_DATABASE_URL"),
        pool_size=10,
        max_overflow=20
    )
    
    agent = Agent(
        name="supabase_agent",
        model="gemini-1.5-flash",
        instruction="You are a helpful assistant."
    )
    
    runner = Runner(
        app_name="supabase_app",
        agent=agent,
        session_service=session_service
    )
    
    # Create and use session
    session = await session_service.create_session(
        app_name="supabase_app",
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
