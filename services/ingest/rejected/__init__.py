"""Rejected input kept in PostgreSQL, so operators can read it without Kafka tooling."""
