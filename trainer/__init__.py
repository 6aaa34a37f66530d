"""Reviewer #2's library, in rooms by concern: serve/ (model, server, chat), store/ (votes, versions,
files), train/ (one KTO round), gate/ (what a new version must show), ui/ (renderers); loop.py,
learning.py and runtime.py tie them together.

The app (`app.py`) imports it; `python -m trainer --help` is its command line.
"""
