#!/usr/bin/env python3
"""Agent with SQLite session storage."""

import asyncio
from openadk import Agent
from openadk.sessions import DatabaseSessionService, Session
from openadk.runners import Runner
from google.genai import types

async def main():
    # Create SQLite session service
    # SQLite file will be created at ./sessions.db
    session_service = DatabaseSessionService(
        db_url="sqlite+aiosqlite:///./sessions.db"
    )
    
    # Create agent
    agent = Agent(
        name="sqlite_agent",
        model="gemini-1.5-flash",
        instruction="You are a helpful assistant with persistent storage."
    )
    
    # Create runner
    runner = Runner(
        app_name="sqlite_app",
        agent=agent,
        session_service=session_service
    )
    
    # Create session
    session = await session_service.create_session(
        app_name="sqlite_app",
        user_id="user123",
        session_id="session456"
    )
    
    print(f"Session created: {session.id}")
    print("Type 'quit' to exit.\n")
    
    while True:
        user_input = input("You: ")
        if user_input.lower() == 'quit':
            break
        
        print("\nAgent: ", end="", flush=True)
        async for event in runner.run_async(
            user_id="user123",
            session_id="session456",
            new_message=types.UserContent(parts=[types.Part(text=user_input)])
        ):
            if event.content and event.content.parts:
                for part in event.content.parts:
                    if part.text:
                        print(part.text, end="", flush=True)
        print("\n")
    
    # Clean up
    await session_service.close()

if __name__ == "__main__":
    asyncio.run(main())
