"""Test credentials of the security tests' embedded issuer (bcrypt with 4 rounds: fast)."""

from __future__ import annotations

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
SECRETS = {"ingest": "ingest-secret-3"}
