"""Webhooks: the outbox's events, projected per partner into what it may know, signed and delivered."""
