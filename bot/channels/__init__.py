"""Channels: thin adapters that turn a transport's messages into `Incoming` and call `handle_turn`."""
