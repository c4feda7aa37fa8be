"""The transactional outbox: what the engine publishes to clm.actions."""
