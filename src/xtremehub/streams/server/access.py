"""What each stream-server request does to which resource: the one table authorisation reads.

Every remote method of the segment store and the controller, and the APPEND/APPEND_BATCH/READ
messages, map to an :class:`~xtremehub.security.authz.Action` on one or more
:class:`~xtremehub.security.authz.Resource` s: a stream (``scope/stream``), a scope, or all
scopes (``scope "*"``). A method missing from the table is refused (deny by default), and a
test checks the table covers every remote method of both contracts.

Example:
    >>> [(a.value, r.kind, r.name) for a, r in request_access("store", "read", {"segment": "s/st/0.#epoch.0"})]
    [('read', 'stream', 's/st')]
    >>> [(a.value, r.name) for a, r in request_access("controller", "create_scope", {"scope": "lungs"})]
    [('admin', 'lungs')]
    >>> [r.name for _, r in request_access("store", "list_segments", {"prefix": "lungs"})]  # also lungs-private/
    ['*']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from xtremehub.errors import AuthenticationFailed, Forbidden
from xtremehub.security.authz import AccessRequest, Action, Authorizer, Resource
from xtremehub.security.identity import Identity
from xtremehub.streams.wire import CONTROLLER_TARGET, STORE_TARGET

__all__ = ["ACCESS_TABLE", "ConnectionAccess", "request_access", "segment_resource"]

log = logging.getLogger(__name__)

#: Resolves a transaction id to its ``scope/stream`` (the controller's ``get_transaction``).
TxnLookup = Callable[[str], str]
_Resources = Callable[[Mapping[str, Any], TxnLookup | None], list[Resource]]

ALL_SCOPES = Resource("scope", "*")


def segment_resource(segment: object) -> Resource:
    """The stream a segment (``scope/stream/<n>.#epoch.<e>[#txn.<id>]``) or a name prefix belongs to.

    Example:
        >>> segment_resource("s/st/0.#epoch.0#txn.ab").name, segment_resource("s/").kind, segment_resource("").name
        ('s/st', 'scope', '*')
    """
    parts = str(segment).split("/")
    if len(parts) >= 2 and parts[0] and parts[1]:
        return Resource("stream", f"{parts[0]}/{parts[1]}")
    if parts[0]:
        return Resource("scope", parts[0])
    return ALL_SCOPES


def _prefix(a: Mapping[str, Any], _: TxnLookup | None) -> list[Resource]:
    """A ``list_segments`` prefix: ``scope/`` is the scope, ``scope/stream/`` the stream; any other
    prefix (``lungs`` also matches ``lungs-private/...``) needs every scope."""
    prefix = str(a.get("prefix") or "")
    parts = prefix.split("/")
    if prefix.endswith("/") and len(parts) == 2 and parts[0]:
        return [Resource("scope", parts[0])]
    if prefix.endswith("/") and len(parts) == 3 and parts[0] and parts[1]:
        return [Resource("stream", f"{parts[0]}/{parts[1]}")]
    return [ALL_SCOPES]


def _segment(*names: str) -> _Resources:
    return lambda a, _: [segment_resource(a[n]) for n in names]


def _scope(a: Mapping[str, Any], _: TxnLookup | None) -> list[Resource]:
    return [Resource("scope", str(a["scope"]))]


def _stream(a: Mapping[str, Any], _: TxnLookup | None) -> list[Resource]:
    return [Resource("stream", f"{a['scope']}/{a['stream']}")]


def _all(a: Mapping[str, Any], _: TxnLookup | None) -> list[Resource]:
    return [ALL_SCOPES]


def _txn(a: Mapping[str, Any], lookup: TxnLookup | None) -> list[Resource]:
    if lookup is None:
        return [ALL_SCOPES]
    return [Resource("stream", lookup(str(a["txn_id"])))]


def _group(a: Mapping[str, Any], _: TxnLookup | None) -> list[Resource]:
    """A reader group's scope, and each stream its configuration reads."""
    scope = str(a["scope"])
    resources = [Resource("scope", scope)]
    config = a.get("config")
    for name in getattr(config, "streams", ()):
        resources.append(Resource("stream", name if "/" in name else f"{scope}/{name}"))
    return resources


R, W, A = Action.READ, Action.WRITE, Action.ADMIN

#: (target, method) -> (action, resources of the named arguments). APPEND/APPEND_BATCH are
#: ("store", "append"), READ is ("store", "read").
ACCESS_TABLE: dict[tuple[str, str], tuple[Action, _Resources]] = {
    (STORE_TARGET, "create_segment"): (A, _segment("name")),
    (STORE_TARGET, "append"): (W, _segment("segment")),
    (STORE_TARGET, "append_async"): (W, _segment("segment")),
    (STORE_TARGET, "read"): (R, _segment("segment")),
    (STORE_TARGET, "info"): (R, _segment("segment")),
    (STORE_TARGET, "writer_event_number"): (R, _segment("segment")),
    (STORE_TARGET, "seal"): (W, _segment("segment")),
    (STORE_TARGET, "merge"): (W, _segment("target", "source")),
    (STORE_TARGET, "truncate"): (A, _segment("segment")),
    (STORE_TARGET, "delete"): (A, _segment("segment")),
    (STORE_TARGET, "list_segments"): (R, _prefix),
    (STORE_TARGET, "stats"): (R, _all),
    (CONTROLLER_TARGET, "create_scope"): (A, _scope),
    (CONTROLLER_TARGET, "delete_scope"): (A, _scope),
    (CONTROLLER_TARGET, "list_scopes"): (R, _all),
    (CONTROLLER_TARGET, "create_stream"): (A, _stream),
    (CONTROLLER_TARGET, "update_stream"): (A, _stream),
    (CONTROLLER_TARGET, "list_streams"): (R, _scope),
    (CONTROLLER_TARGET, "get_stream"): (R, _stream),
    (CONTROLLER_TARGET, "seal_stream"): (A, _stream),
    (CONTROLLER_TARGET, "delete_stream"): (A, _stream),
    (CONTROLLER_TARGET, "get_active_segments"): (R, _stream),
    (CONTROLLER_TARGET, "get_successors"): (R, _stream),
    (CONTROLLER_TARGET, "scale_stream"): (A, _stream),
    (CONTROLLER_TARGET, "report_traffic"): (W, _stream),
    (CONTROLLER_TARGET, "get_head_cut"): (R, _stream),
    (CONTROLLER_TARGET, "get_tail_cut"): (R, _stream),
    (CONTROLLER_TARGET, "truncate_stream"): (A, _stream),
    (CONTROLLER_TARGET, "begin_transaction"): (W, _stream),
    (CONTROLLER_TARGET, "ping_transaction"): (W, _txn),
    (CONTROLLER_TARGET, "commit_transaction"): (W, _txn),
    (CONTROLLER_TARGET, "abort_transaction"): (W, _txn),
    (CONTROLLER_TARGET, "get_transaction"): (R, _txn),
    (CONTROLLER_TARGET, "create_reader_group"): (R, _group),
    (CONTROLLER_TARGET, "delete_reader_group"): (W, _scope),
    (CONTROLLER_TARGET, "list_reader_groups"): (R, _scope),
    (CONTROLLER_TARGET, "get_reader_group"): (R, _scope),
    (CONTROLLER_TARGET, "reset_reader_group"): (W, _group),
    (CONTROLLER_TARGET, "sync_reader"): (R, _scope),
    (CONTROLLER_TARGET, "reader_offline"): (R, _scope),
    (CONTROLLER_TARGET, "get_reader_group_cuts"): (R, _scope),
    (CONTROLLER_TARGET, "initiate_checkpoint"): (R, _scope),
    (CONTROLLER_TARGET, "get_checkpoint"): (R, _scope),
    (CONTROLLER_TARGET, "list_checkpoints"): (R, _scope),
    (CONTROLLER_TARGET, "cancel_checkpoint"): (W, _scope),
    (CONTROLLER_TARGET, "delete_checkpoint"): (W, _scope),
    (CONTROLLER_TARGET, "run_maintenance"): (A, _all),
}


def request_access(
    target: str, method: str, arguments: Mapping[str, Any], lookup: TxnLookup | None = None
) -> list[tuple[Action, Resource]]:
    """The (action, resource) pairs a call needs; :class:`Forbidden` for a method not in the table."""
    rule = ACCESS_TABLE.get((target, method))
    if rule is None:
        raise Forbidden(f"{target}.{method}: no authorisation rule, refused")
    action, resources = rule
    return [(action, resource) for resource in resources(arguments, lookup)]


class ConnectionAccess:
    """The authenticated identity of one connection and the checks of its requests.

    ``alive`` ends access when the token expires (no leeway: the server's clock decides);
    ``authorize`` asks the authorizer's ``check`` (which raises :class:`Forbidden`; None:
    every authenticated identity may do everything). An allowed (action, resource) is
    remembered for ``cache_ttl`` seconds, so a writer appending 30 events a second asks the
    policy engine (and writes an audit record) about once per ``cache_ttl``, not per event;
    refusals are never remembered. 0 asks every time.
    """

    def __init__(
        self,
        identity: Identity,
        authorizer: Authorizer | None,
        *,
        purpose: str | None = None,
        cache_ttl: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.purpose = purpose
        self._authorizer = authorizer
        self._cache_ttl = cache_ttl
        self._allowed: dict[tuple[Action, str, str], float] = {}
        self._clock = clock

    def alive(self) -> None:
        """:class:`AuthenticationFailed` once the connection's token has expired."""
        expires = self.identity.expires_at
        if expires is not None and self._clock() >= expires:
            raise AuthenticationFailed(
                f"token of {self.identity.subject} expired at "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expires))}; connect again with a fresh token"
            )

    def authorize(self, action: Action, resource: Resource) -> None:
        """Check the token is alive and ``action`` on ``resource`` is allowed."""
        self.alive()
        if self._authorizer is None:
            return
        key = (action, resource.kind, resource.name)
        now = self._clock()
        if self._allowed.get(key, 0.0) > now:
            return
        self._authorizer.check(AccessRequest(self.identity, action, resource, purpose=self.purpose, at=now))
        if self._cache_ttl > 0:
            if len(self._allowed) > 4096:
                self._allowed.clear()
            self._allowed[key] = now + self._cache_ttl

    def authorize_all(self, needs: list[tuple[Action, Resource]]) -> None:
        """:meth:`authorize` each pair."""
        for action, resource in needs:
            self.authorize(action, resource)
