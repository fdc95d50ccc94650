"""Security: identities, authorisation, encryption at rest and in flight, key release, audit.

Security is off in the embedded single-user default (nothing to set up); turning it on makes
every entry point authenticate and authorise. The package is laid out by concept:

- :mod:`.identity` -- who is calling: :class:`~.identity.Identity`, token validators and providers.
- :mod:`.authz` -- may they: actions, resources, requests and the :class:`~.authz.Authorizer` protocol.
- :mod:`.keys` -- the key-encryption-key protocol that encrypted stores and the key service share.

Example:
    >>> from xtremehub.security.identity import Identity
    >>> Identity(subject="alice", roles=frozenset({"research"})).has_role("research")
    True
"""

from __future__ import annotations
