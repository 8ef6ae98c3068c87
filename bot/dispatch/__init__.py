"""The async dispatcher: one `handle_turn` entry point shared by every channel."""
