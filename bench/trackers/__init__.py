"""Trackers measure; they don't train. Each one is usable on its own and cheap when idle."""
