"""UI renderers: the status line and the dashboard view, from the typed status and version metadata."""
