"""Tiered stream store with Pravega semantics (embedded or as a server)."""
