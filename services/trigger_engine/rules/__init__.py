"""Rules: CRUD with immutable versions, simulation and stats; the rules API."""
