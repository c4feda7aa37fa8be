"""Prometheus metrics of the messenger."""
