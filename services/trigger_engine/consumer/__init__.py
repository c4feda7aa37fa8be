"""The clm.events consumer: one transaction per poll, offsets committed after it."""
