"""Test doubles and demo tools: fake servers that behave like the real ones over real HTTP on loopback.

Not part of the sync: `sync/` holds what runs in production. One module per fake server (`kobo`), with
the submission generator they share.
"""
