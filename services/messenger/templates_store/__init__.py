"""Managed templates: subject/text/html stored in the messenger, rendered at send time."""
