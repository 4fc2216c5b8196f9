"""Sync: the outbox, link tiers and the transports that carry records upstream."""
