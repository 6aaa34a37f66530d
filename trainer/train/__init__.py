"""Training: one KTO round on a twin of the base, and what makes it fast, small and polite to chat."""
