"""Access requests: ask to use a dataset for a purpose; the owner (or an admin) decides.

Approval writes a Cedar *usage policy* into the security policy store
(:class:`~xtremehub.security.policy_store.PolicyStore` at :func:`usage_policy_source`): a file
``access-<request>.cedar`` permitting the requester to ``read`` the dataset and what is inside it
(``resource in XHub::Dataset::"<id>"``: the catalog record and the dataset's key,
``XHub::Key::"<id>"`` / ``"<id>#<version>"``) and its data (object, prefix or stream), only for the stated
purpose (``context.purpose``) and only before the expiry (``context.now``). Rejecting a pending
request writes nothing; revoking an approved one removes the file. The decision and the policy
change are one step: if the policy cannot be written the request stays pending, and a policy
whose request could not be saved is removed again. Listeners registered with
:meth:`AccessRequests.on_policy_change` (an app's authorizer) are told after each change has
committed (never inside the transaction: a rolled-back decision never puts a policy in force, and
a listener that fails is logged and cannot undo a committed one), so the process that wrote a
policy applies it at once; others see it at their next reload.

A stream dataset's approval grants ``read`` on its stream (``resource ==
XHub::Stream::"<scope>/<stream>"``, what the stream server and the REST API ask for a stream's
segments, cuts and pages); an object, prefix or derived dataset's grants its object or prefix
(:func:`granted_data`).

The key service names a catalog dataset's key by the catalog id: the key service's dataset of
catalog dataset ``ds-3f9a0c2e41d7b855`` is ``ds-3f9a0c2e41d7b855`` (see
:attr:`~xtremehub.catalog.model.Dataset.key_name`), so a release of its key
(``read`` on ``Resource("key", "<id>")`` for the job's purpose) is permitted by the approval.

Example:
    >>> from datetime import datetime, timezone
    >>> print(usage_policy("ar-1", "ds-1", "s3://lab/x.fq", "object", "carol", "research",
    ...                    datetime(2027, 1, 1, tzinfo=timezone.utc), "bob"))  # doctest: +NORMALIZE_WHITESPACE
    @id("access-ar-1")
    @reason("access request ar-1 approved by bob: carol reads ds-1 for research until 2027-01-01T00:00:00Z")
    permit(principal == XHub::User::"carol", action == XHub::Action::"read", resource in XHub::Dataset::"ds-1")
    when { context.purpose == "research" && context.now < datetime("2027-01-01T00:00:00Z") };
    @id("access-ar-1-data")
    @reason("access request ar-1 approved by bob: carol reads ds-1 for research until 2027-01-01T00:00:00Z")
    permit(principal == XHub::User::"carol", action == XHub::Action::"read", resource == XHub::Object::"s3://lab/x.fq")
    when { context.purpose == "research" && context.now < datetime("2027-01-01T00:00:00Z") };
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from xtremehub.catalog.model import DataAccessRequest
from xtremehub.catalog.store import limits, rows
from xtremehub.catalog.store.schema import access_requests, datasets
from xtremehub.catalog.streams import is_stream_url, split_stream_url
from xtremehub.errors import DatasetNotFound, Forbidden, InvalidMetadata, PreconditionFailed, StalePolicy

__all__ = [
    "DEFAULT_TERM",
    "AccessRequests",
    "granted_data",
    "policy_file",
    "usage_policy",
    "usage_policy_source",
]

log = logging.getLogger(__name__)

#: How long an approval lasts when the request named no expiry.
DEFAULT_TERM = timedelta(days=90)
_DATASET_COLUMNS = (datasets.c.owner, datasets.c.url, datasets.c.kind)
_STATUSES = ("pending", "approved", "rejected", "revoked", "expired")


def _cedar(text: str) -> str:
    """``text`` as a Cedar string literal (control characters are refused before this)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_policy_source(settings: Any) -> str:
    """Where approvals write their usage policies: ``[catalog] policies``, else ``<home>/policies``.

    A server deciding with policies reads this source too (``xhub serve`` adds it to ``--policy``).

    Example:
        >>> from xtremehub.config import Settings
        >>> usage_policy_source(Settings(home="/srv/xhub"))
        '/srv/xhub/policies'
    """
    return str(settings.catalog.policies or settings.home / "policies")


def policy_file(request_id: str) -> str:
    """The policy file an approved request writes."""
    return f"access-{request_id}.cedar"


def granted_data(kind: str, url: str) -> tuple[str, str] | None:
    """The data an approval of a dataset of ``kind`` at ``url`` grants besides the dataset and its
    key: ``("stream", "<scope>/<stream>")`` for a stream URL (decided by the URL, never by a
    claimed kind), ``("object" | "prefix", name)`` for an object, prefix or derived dataset with a
    URL (the name the policy engine judges it by: ``file://`` URLs become paths), else None.

    Raises:
        InvalidMetadata: a URL with ``.`` or ``..`` segments (a policy on it would not hold).

    Example:
        >>> granted_data("stream", "xhub-stream://lab/cam"), granted_data("prefix", "s3://lab/run9")
        (('stream', 'lab/cam'), ('prefix', 's3://lab/run9/'))
    """
    if is_stream_url(url):
        scope, stream = split_stream_url(url)
        return "stream", f"{scope}/{stream}"
    if kind not in ("object", "prefix", "derived") or "://" not in url:
        return None
    from xtremehub.security.policy import object_name

    name = object_name(url if kind != "prefix" or url.endswith("/") else url + "/")
    if name is None:
        raise InvalidMetadata("url", f"{url}: '.' and '..' segments are refused in a usage policy")
    return ("prefix" if kind == "prefix" else "object"), name


def usage_policy(
    request_id: str, dataset_id: str, url: str, kind: str, requester: str, purpose: str, expires: datetime, by: str
) -> str:
    """The Cedar text of an approved request (see the module docstring)."""
    reason = _cedar(
        f"access request {request_id} approved by {by}: {requester} reads {dataset_id} "
        f"for {purpose} until {_stamp(expires)}"
    )
    head = f'permit(principal == XHub::User::{_cedar(requester)}, action == XHub::Action::"read", '
    when = f'when {{ context.purpose == {_cedar(purpose)} && context.now < datetime("{_stamp(expires)}") }};'
    out = [
        f'@id("access-{request_id}")\n@reason({reason})\n{head}resource in XHub::Dataset::{_cedar(dataset_id)})\n{when}'
    ]
    granted = granted_data(kind, url)
    if granted is not None:
        entity = {"stream": "Stream", "prefix": "Prefix", "object": "Object"}[granted[0]]
        test = "in" if granted[0] == "prefix" else "=="
        data = f"resource {test} XHub::{entity}::{_cedar(granted[1])}"
        out.append(f'@id("access-{request_id}-data")\n@reason({reason})\n{head}{data})\n{when}')
    return "\n".join(out) + "\n"


class AccessRequests:
    """The access-request half of :class:`~xtremehub.catalog.store.catalog.SqlCatalog`."""

    _settings: Any
    _policy_store: Any
    _policy_listeners: list[Callable[[], None]]

    # provided by SqlCatalog
    def _read(self) -> contextlib.AbstractContextManager[Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _write(self) -> contextlib.AbstractContextManager[Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _pk(self, conn: Any, dataset_id: str) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _audited(self, actor: str, action: str, resource: str, **detail: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def request_access(
        self, dataset_id: str, *, actor: str, purpose: str, expires: datetime | None = None
    ) -> DataAccessRequest:
        """Ask to read ``dataset_id`` for ``purpose`` until ``expires`` (default: 90 days after approval)."""
        actor = limits.subject("actor", actor)
        purpose = limits.text("purpose", purpose, limits.MAX_PURPOSE).strip()
        if not purpose:
            raise InvalidMetadata("purpose", "must not be empty")
        t = rows.now()
        if expires is not None:
            if expires.tzinfo is None:
                raise InvalidMetadata("expires", "must be an aware time (with a time zone)")
            if expires <= t:
                raise InvalidMetadata("expires", f"{expires.isoformat()} is in the past")
        with self._write() as conn:
            pk = self._pk(conn, dataset_id)
            values = {
                "id": rows.new_id("ar"),
                "dataset_pk": pk,
                "requester": actor,
                "purpose": purpose,
                "status": "pending",
                "created": t,
                "etag": rows.new_etag(),
                "expires": expires,
                "reason": "",
            }
            conn.execute(sa.insert(access_requests).values(**values))
            row = self._request_row(conn, str(values["id"]))
        self._audited(actor, "request-access", f"dataset:{dataset_id}", request=values["id"], purpose=purpose)
        return rows.access_request(row, dataset_id)

    def get_access_request(self, request_id: str) -> DataAccessRequest:
        """The access request ``request_id``, or :class:`DatasetNotFound` (kind ``access request``)."""
        with self._read() as conn:
            row = self._request_row(conn, request_id)
        return rows.access_request(row, row.dataset_id)

    def _request_row(self, conn: Any, request_id: str) -> Any:
        request_id = limits.text("request_id", request_id, limits.MAX_ID)
        row = conn.execute(
            sa.select(
                access_requests, datasets.c.id.label("dataset_id"), datasets.c.owner, datasets.c.url, datasets.c.kind
            )
            .join(datasets, datasets.c.pk == access_requests.c.dataset_pk)
            .where(access_requests.c.id == request_id)
        ).first()
        if row is None:
            raise DatasetNotFound(request_id, "access request")
        return row

    def _may_decide(self, actor: str, owner: str, roles: Collection[str]) -> bool:
        return actor == owner or "admin" in roles or actor in self._settings.catalog.admins

    def decide(
        self,
        request_id: str,
        *,
        approve: bool,
        actor: str,
        if_match: str,
        reason: str = "",
        roles: Collection[str] = (),
    ) -> DataAccessRequest:
        """Approve (writes the usage policy) or reject a pending request; the dataset's owner or an
        admin (``roles`` holding ``admin``, or ``[catalog] admins``) only, else :class:`Forbidden`.
        Rejecting an approved request revokes it (:meth:`revoke`)."""
        actor = limits.subject("actor", actor)
        reason = limits.text("reason", reason, limits.MAX_PURPOSE)
        with self._read() as conn:
            current = self._request_row(conn, request_id)
        if not approve and current.status == "approved":
            return self.revoke(request_id, actor=actor, if_match=if_match, reason=reason, roles=roles)
        t = rows.now()
        policy_name: str | None = None
        try:
            with self._write() as conn:
                row = self._checked(conn, request_id, actor, if_match, roles, "pending")
                expires = rows.utc(row.expires) if row.expires is not None else t + DEFAULT_TERM
                if approve and expires <= t:
                    raise InvalidMetadata("expires", f"the request expired at {expires.isoformat()}")
                values: dict[str, Any] = {
                    "status": "approved" if approve else "rejected",
                    "decided_by": actor,
                    "decided_at": t,
                    "reason": reason,
                    "etag": rows.new_etag(),
                }
                if approve:
                    values["expires"] = expires
                    values["policy_id"] = f"access-{row.id}"
                self._set(conn, row, if_match, values)
                if approve:
                    text = usage_policy(
                        row.id, row.dataset_id, row.url, row.kind, row.requester, row.purpose, expires, actor
                    )
                    policy_name = policy_file(row.id)
                    self._write_policy({policy_name: text}, actor)
                result = rows.access_request(self._request_row(conn, row.id), row.dataset_id)
        except BaseException:
            if policy_name is not None:  # the decision was not saved: take the policy back (if written)
                try:
                    self._write_policy({policy_name: None}, actor)
                except Exception:
                    log.exception(
                        "access request %s was not approved; its usage policy %s could not be taken back",
                        request_id,
                        policy_name,
                    )
                # a timed reload may have read the file meanwhile: re-read without it now
                self._policy_changed((policy_name,))
            raise
        if policy_name is not None:  # committed: the processes' authorizers apply it now
            self._policy_changed((policy_name,))
        self._audited(
            actor,
            "approve-access" if approve else "reject-access",
            f"dataset:{result.dataset_id}",
            request=result.id,
            requester=result.requester,
            purpose=result.purpose,
            policy=result.policy_id,
        )
        return result

    def revoke(
        self, request_id: str, *, actor: str, if_match: str, reason: str = "", roles: Collection[str] = ()
    ) -> DataAccessRequest:
        """Withdraw an approved request: its usage policy is removed (owner or admin only)."""
        actor = limits.subject("actor", actor)
        reason = limits.text("reason", reason, limits.MAX_PURPOSE)
        removed = False
        try:
            with self._write() as conn:
                row = self._checked(conn, request_id, actor, if_match, roles, "approved")
                values = {"status": "revoked", "decided_by": actor, "decided_at": rows.now(), "etag": rows.new_etag()}
                self._set(conn, row, if_match, {**values, "reason": reason or row.reason})
                self._write_policy({policy_file(row.id): None}, actor)
                removed = True
                result = rows.access_request(self._request_row(conn, row.id), row.dataset_id)
        finally:
            if removed:  # committed or not, the policy is gone: no authorizer keeps it in force
                self._policy_changed((policy_file(row.id),))
        self._audited(
            actor, "revoke-access", f"dataset:{result.dataset_id}", request=result.id, policy=result.policy_id
        )
        return result

    def _checked(
        self, conn: Any, request_id: str, actor: str, if_match: str, roles: Collection[str], status: str
    ) -> Any:
        row = self._request_row(conn, request_id)
        if not self._may_decide(actor, row.owner, roles):
            self._audited(actor, "decide-access-denied", f"dataset:{row.dataset_id}", request=row.id)
            raise Forbidden(
                f"{actor} may not decide access request {row.id}: only the owner of {row.dataset_id} or an admin"
            )
        if row.etag != if_match:
            raise PreconditionFailed(row.id, if_match, row.etag)
        if row.status != status:
            raise InvalidMetadata("status", f"access request {row.id} is {row.status}, not {status}")
        return row

    @staticmethod
    def _set(conn: Any, row: Any, if_match: str, values: dict[str, Any]) -> None:
        done = conn.execute(
            sa.update(access_requests)
            .where(access_requests.c.id == row.id, access_requests.c.etag == if_match)
            .values(**values)
        )
        if done.rowcount != 1:
            raise PreconditionFailed(row.id, if_match, "(changed)")

    def _store(self) -> Any:
        if self._policy_store is None:
            from xtremehub.security.policy_store import PolicyStore

            self._policy_store = PolicyStore(usage_policy_source(self._settings), settings=self._settings)
        return self._policy_store

    def _write_policy(self, changes: dict[str, str | None], actor: str) -> None:
        store = self._store()
        for attempt in range(5):
            try:
                store.update(changes, base=store.load().digest, subject=actor)
                break
            except StalePolicy:  # another writer changed the set in between: re-read and retry
                if attempt == 4:
                    raise

    def _policy_changed(self, names: Collection[str]) -> None:
        """Tell the listeners that the usage policies ``names`` changed: called after the decision
        committed (never inside its transaction, so that a decision that is rolled back never puts
        a policy in force, and a listener's failure cannot undo a committed one)."""
        for listener in tuple(self._policy_listeners):
            try:
                listener()
            except Exception:  # the decision is committed: log, the listener keeps its last good policies
                log.exception("a usage-policy listener failed after %s", ", ".join(sorted(names)))

    def on_policy_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each usage-policy change this catalog writes (approve, revoke,
        delete); returns the function that unsubscribes it. An app applies approvals at once so."""
        self._policy_listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._policy_listeners.remove(listener)

        return unsubscribe

    def access_requests(
        self, *, dataset_id: str | None = None, requester: str | None = None, status: str | None = None
    ) -> Sequence[DataAccessRequest]:
        """Requests, newest first, optionally of one dataset, one requester and/or one status."""
        stmt = sa.select(access_requests, datasets.c.id.label("dataset_id")).join(
            datasets, datasets.c.pk == access_requests.c.dataset_pk
        )
        if status is not None:
            if status not in _STATUSES:
                raise InvalidMetadata("status", f"must be one of {', '.join(_STATUSES)}, not {status!r}")
            t = rows.now()
            if status == "expired":  # stored as approved, past its expiry
                stmt = stmt.where(access_requests.c.status == "approved", access_requests.c.expires <= t)
            elif status == "approved":
                stmt = stmt.where(access_requests.c.status == "approved", access_requests.c.expires > t)
            else:
                stmt = stmt.where(access_requests.c.status == status)
        if requester is not None:
            stmt = stmt.where(access_requests.c.requester == limits.text("requester", requester, limits.MAX_SUBJECT))
        with self._read() as conn:
            if dataset_id is not None:
                stmt = stmt.where(access_requests.c.dataset_pk == self._pk(conn, dataset_id))
            found = conn.execute(stmt.order_by(access_requests.c.created.desc(), access_requests.c.id)).all()
        return tuple(rows.access_request(r, r.dataset_id) for r in found)
