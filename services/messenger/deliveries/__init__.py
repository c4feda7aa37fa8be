"""Deliveries: one row per action, an append-only log of attempts, replay."""
