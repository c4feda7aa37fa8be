"""Pure, I/O-free building blocks of webhook delivery.

- :mod:`.retry` — retry policy as data and the decision after each attempt.
- :mod:`.signing` — Standard Webhooks signatures and ``whsec_`` secrets.
- :mod:`.urlguard` — SSRF checks of destination URLs and of resolved addresses.
- :mod:`.templates` — optional managed templates in a hardened Jinja2 sandbox
  (:mod:`.sandbox`).

The I/O layer (HTTP client, database, Kafka) composes these; nothing here touches the
network, the clock or a global random generator.
"""
