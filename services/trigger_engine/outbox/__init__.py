"""The transactional outbox and its relay to clm.actions."""
