"""Loopback plumbing every step shares: ports, serving an app, a file server, child processes, metrics and request ids.

It imports nothing of the service above it."""
