"""Suppressions and consent: who must never receive a send on a channel."""
