"""Reviewer #2's library: votes, data, model, rounds, versions, serving and the trainer loop.

The app (`app.py`) imports it; `python -m trainer --help` is its command line.
"""
