"""The event store: every normalized event, for timelines, metrics and replay."""
