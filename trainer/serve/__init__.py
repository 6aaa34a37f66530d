"""Serving: the base model and its twins, the server that streams replies and swaps versions, chat sessions."""
