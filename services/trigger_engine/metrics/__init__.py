"""Prometheus metrics of the engine, and the lifecycle metrics API."""
