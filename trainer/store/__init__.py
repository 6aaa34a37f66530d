"""Storage: replies and votes (SQLite), adapter versions and their pointer, preference files."""
