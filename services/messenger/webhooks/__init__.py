"""Sending one signed webhook: the body, the SSRF-guarded HTTP transport, the attempt."""
