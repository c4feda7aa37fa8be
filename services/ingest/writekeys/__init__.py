"""Write keys of storefront sources (pure helpers; storage is the lead's repository)."""

from services.ingest.writekeys.keys import (
    generate_key,
    hash_key,
    key_prefix,
    parse_basic_auth,
)

__all__ = ["generate_key", "hash_key", "key_prefix", "parse_basic_auth"]
