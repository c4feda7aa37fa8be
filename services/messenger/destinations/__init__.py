"""Destinations: where actions are delivered (a provider's webhook URL and its secret)."""
