#!/usr/bin/env python3
"""Agent with session management."""

import asyncio
from openadk import Agent
from openadk.sessions import InMemorySessionService
from openadk.runners import Runner

async def main():
    # Create session service
    session_service = InMemorySessionService()
    
    # Create agent
    agent = Agent(
        name="session_agent",
        description="An agent that remembers conversations",
        model="gemini-1.5-flash",
        instruction="You are a helpful assistant that remembers our conversation."
    )
    
    # Create runner
    runner = Runner(
        app_name="session_app",
        agent=agent,
        session_service=session_service
    )
    
    # Create session
    session = await session_service.create_session(
        app_name="session_app",
        user_id="user123",
        session_id="session456"
    )
    print(f"Session created: {session.id}\n")
    
    from google.genai import types
    
    print("Session Agent: Hello! I'll remember our conversation.")
    print("Type 'quit' to exit.\n")
    
    while True:
        user_input = input("You: ")
        if user_input.lower() == 'quit':
            break
        
        print("\nAgent: ", end="", flush=True)
        async for event in runner.run_async(
            user_id="user123",
            session_id=session.id,
            new_message=types.UserContent(parts=[types.Part(text=user_input)])
        ):
            if event.content and event.content.parts:
                for part in event.content.parts:
                    if part.text:
                        print(part.text, end="", flush=True)
        print("\n")

if __name__ == "__main__":
    asyncio.run(main())
