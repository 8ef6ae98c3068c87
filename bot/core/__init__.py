"""Core types of a turn; they import no framework (no torch, telegram, aiohttp or sqlalchemy)."""
