"""``xhub catalog``: register, find, trace and govern datasets in the data catalog.

The catalog is the configured one (``--catalog URL`` > ``XHUB_CATALOG_URL`` > ``[catalog] url``
> ``<home>/catalog.db``). The acting user is ``--as`` (default: the login name). Every command
prints a short text form, or JSON with ``--json``.

Trust: the CLI is a direct client of the catalog database and the usage-policy store. It has no
authenticated identity: ``--as``, ``--role`` and the login name (from the environment) are labels
for the audit log, and whoever can run it against a catalog can change its rows and policy files
directly anyway. That fits the local single-user installation (as ``xhub serve`` without tokens).
Where identities and policies are configured (``[web] oidc_issuer``/``security`` or ``[web]
policy``, what ``xhub serve`` decides with), the CLI refuses to act as anyone but the login name
(``--as``) and refuses to approve or reject (``--role`` included): decisions go through the REST API
or the cockpit, which check the approver's token and rights.

Example:
    >>> from click.testing import CliRunner
    >>> out = CliRunner().invoke(catalog_group, ["--help"]).output
    >>> all(word in out for word in ("add", "search", "lineage", "approve"))
    True
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from xtremehub.catalog.model import DatasetKind, SearchQuery
from xtremehub.config import Settings
from xtremehub.errors import InvalidMetadata

__all__ = ["catalog_group", "plain"]

_FACET_OPTIONS = ("format", "owner", "tag", "licence", "kind")


def plain(value: Any) -> Any:
    """``value`` (catalog dataclasses, times, tuples) as JSON-able data.

    Example:
        >>> from datetime import datetime, timezone
        >>> plain({"t": datetime(2026, 1, 1, tzinfo=timezone.utc), "x": (1, 2)})
        {'t': '2026-01-01T00:00:00+00:00', 'x': [1, 2]}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class _Ctx:
    def __init__(self, settings: Settings, url: str | None, actor: str, config_file: Path | None) -> None:
        self.settings, self.url, self.actor = settings, url, actor
        self._config_file = config_file
        self._catalog: Any = None
        self._secured: bool | None = None

    @property
    def secured(self) -> bool:
        """Whether this installation decides with identities and policies (``[web]`` security or policy)."""
        if self._secured is None:
            from xtremehub.web.config import WebConfig

            web = WebConfig.load(config_file=self._config_file if self._config_file is not None else "default")
            self._secured = web.security or bool(web.policy)
        return self._secured

    def catalog(self) -> Any:
        if self._catalog is None:
            from xtremehub.catalog import open_catalog

            self._catalog = open_catalog(self.url, settings=self.settings)
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()


@click.group("catalog")
@click.option("--catalog", "url", help="Catalog database URL (sqlite:///path.db or postgresql://...).")
@click.option("--as", "actor", help="Act as this user (default: the login name).")
@click.pass_context
def catalog_group(ctx: click.Context, url: str | None, actor: str | None) -> None:
    """The data catalog: datasets, versions, search, lineage and access requests."""
    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings.load()
    login = getpass.getuser()
    state = _Ctx(settings, url, actor or login, ctx.find_root().params.get("config_file"))
    if actor is not None and actor != login and state.secured:
        raise click.ClickException(
            f"--as {actor}: identities and policies are configured ([web] oidc_issuer or policy), so the catalog "
            f"CLI acts only as the login name ({login}); act as another user through the REST API or the cockpit"
        )
    ctx.obj = state
    ctx.call_on_close(state.close)


def _output(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--json``; the command returns (data, text lines)."""

    @functools.wraps(func)
    def wrapper(as_json: bool, **kwargs: Any) -> None:
        state = click.get_current_context().find_object(_Ctx)
        assert state is not None
        data, lines = func(state, **kwargs)
        if as_json:
            click.echo(json.dumps(plain(data), indent=1, sort_keys=True))
        else:
            for line in lines:
                click.echo(line)

    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(wrapper)


def _dataset_line(d: Any) -> str:
    tags = f"  [{', '.join(d.tags)}]" if d.tags else ""
    return f"{d.id}  v{d.latest_version}  {d.format or '-':<10} {d.owner:<12} {d.title}{tags}"


def _page_lines(page: Any) -> list[str]:
    lines = [_dataset_line(d) for d in page.items]
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else "none"
    lines.append(f"{shown} of {page.total}")
    for facet, values in page.facets.items():
        if values:
            lines.append(f"  {facet}: " + ", ".join(f"{v} ({n})" for v, n in values.items()))
    return lines


@catalog_group.command("add")
@click.argument("url")
@click.option("--title", help="Title (default: the file name or the connector's).")
@click.option("--description", default="", help="Free text.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--licence", help="Licence, e.g. CC-BY-4.0.")
@click.option("--format", "format_", help="Connector format (default: detected).")
@click.option("--kind", type=click.Choice(["object", "prefix", "stream", "derived"]), default="object")
@click.option("--facts", help="Facts as a JSON object (default: extracted by the connector).")
@click.option("--source-version", help="The content version (etag, stream cut) the facts describe.")
@_output
def add(
    state: _Ctx,
    url: str,
    title: str | None,
    description: str,
    tags: tuple[str, ...],
    licence: str | None,
    format_: str | None,
    kind: DatasetKind,
    facts: str | None,
    source_version: str | None,
) -> tuple[Any, list[str]]:
    """Register URL (or add a version when its content changed), with its extracted metadata."""
    given: dict[str, Any] | None = None
    if facts is not None:
        try:
            given = json.loads(facts)
        except ValueError as exc:
            raise InvalidMetadata("facts", f"not JSON: {exc}") from None
    if given is not None and source_version is None:
        source_version = "manual-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    try:
        ds = state.catalog().register(
            url,
            actor=state.actor,
            kind=kind,
            title=title,
            description=description,
            tags=tags,
            licence=licence,
            format=format_,
            facts=given,
            source_version=source_version,
        )
    except NotImplementedError as exc:
        raise click.ClickException(
            f"automatic metadata extraction is not available here ({exc}); give --facts"
        ) from None
    return ds, [_dataset_line(ds)]


@catalog_group.command("ls")
@click.option("--limit", default=20, show_default=True)
@click.option("--offset", default=0, show_default=True)
@_output
def ls(state: _Ctx, limit: int, offset: int) -> tuple[Any, list[str]]:
    """List datasets, newest first."""
    page = state.catalog().search(SearchQuery(limit=limit, offset=offset))
    return page, _page_lines(page)


@catalog_group.command("search")
@click.argument("text", default="")
@click.option("--format", "formats", multiple=True, help="Only this format (repeatable: any of them).")
@click.option("--owner", "owners", multiple=True, help="Only this owner (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only with this tag (repeatable).")
@click.option("--licence", "licences", multiple=True, help="Only this licence (repeatable).")
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable).")
@click.option("--limit", default=20, show_default=True)
@click.option("--offset", default=0, show_default=True)
@_output
def search(
    state: _Ctx,
    text: str,
    formats: tuple[str, ...],
    owners: tuple[str, ...],
    tags: tuple[str, ...],
    licences: tuple[str, ...],
    kinds: tuple[str, ...],
    limit: int,
    offset: int,
) -> tuple[Any, list[str]]:
    """Full-text search (every word must match) with facet filters and counts."""
    filters = dict(zip(_FACET_OPTIONS, (formats, owners, tags, licences, kinds), strict=True))
    query = SearchQuery(text=text, filters={k: v for k, v in filters.items() if v}, limit=limit, offset=offset)
    page = state.catalog().search(query)
    return page, _page_lines(page)


@catalog_group.command("show")
@click.argument("dataset_id")
@_output
def show(state: _Ctx, dataset_id: str) -> tuple[Any, list[str]]:
    """One dataset with its metadata and extracted facts."""
    d = state.catalog().get(dataset_id)
    lines = [f"{k}: {v}" for k, v in plain(d).items() if k != "facts"]
    lines.append("facts: " + json.dumps(plain(d.facts), indent=1, sort_keys=True))
    return d, lines


@catalog_group.command("versions")
@click.argument("dataset_id")
@_output
def versions(state: _Ctx, dataset_id: str) -> tuple[Any, list[str]]:
    """The content versions of a dataset, oldest first."""
    found = state.catalog().versions(dataset_id)
    return found, [f"v{v.number}  {v.created.isoformat()}  {v.source_version}" for v in found]


@catalog_group.command("lineage")
@click.argument("dataset_id")
@click.option("--up", "direction", flag_value="up", help="Only upstream (what it came from).")
@click.option("--down", "direction", flag_value="down", help="Only downstream (what was made from it).")
@click.option("--both", "direction", flag_value="both", default=True, help="Both ways (default).")
@click.option("--depth", default=5, show_default=True)
@_output
def lineage(state: _Ctx, dataset_id: str, direction: str, depth: int) -> tuple[Any, list[str]]:
    """Datasets and jobs upstream and/or downstream of a dataset."""
    graph = state.catalog().lineage(dataset_id, direction=direction, depth=depth)
    titles = {f"dataset:{d.id}": f"{d.id} ({d.title})" for d in graph.datasets}
    titles |= {f"job:{j.job_id}": f"job {j.job_id} ({j.function}, {j.status})" for j in graph.jobs}
    lines = [f"{titles.get(e.source, e.source)} -> {titles.get(e.target, e.target)}" for e in graph.edges]
    return graph, lines or [f"{titles[graph.root]}: no lineage recorded"]


def _expiry(text: str | None) -> datetime | None:
    """``30d``, ``12h`` or an ISO time (UTC when it names no zone)."""
    if text is None:
        return None
    if m := re.fullmatch(r"(\d+)([dh])", text.strip()):
        n = int(m.group(1))
        return datetime.now(UTC) + (timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n))
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidMetadata("expires", f"{text!r} is neither a duration (30d, 12h) nor an ISO time") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _request_line(r: Any) -> str:
    until = f" until {r.expires.isoformat()}" if r.expires else ""
    return f"{r.id}  {r.status:<8} {r.requester} -> {r.dataset_id} for {r.purpose!r}{until}"


@catalog_group.command("request")
@click.argument("dataset_id")
@click.option("--purpose", required=True, help="What the data will be used for.")
@click.option("--expires", help="Until when: 30d, 12h or an ISO time (default: 90 days after approval).")
@_output
def request(state: _Ctx, dataset_id: str, purpose: str, expires: str | None) -> tuple[Any, list[str]]:
    """Ask the owner of a dataset for access, for a purpose."""
    r = state.catalog().request_access(dataset_id, actor=state.actor, purpose=purpose, expires=_expiry(expires))
    return r, [_request_line(r)]


def _decide(state: _Ctx, request_id: str, approve: bool, reason: str, roles: tuple[str, ...]) -> tuple[Any, list[str]]:
    if state.secured:
        raise click.ClickException(
            "identities and policies are configured ([web] oidc_issuer or policy): decide access requests "
            "through the REST API or the cockpit, which check the approver's token and rights (the data and "
            "its key); the catalog CLI has no authenticated identity"
        )
    cat = state.catalog()
    current = cat.get_access_request(request_id)
    r = cat.decide(request_id, approve=approve, actor=state.actor, if_match=current.etag, reason=reason, roles=roles)
    return r, [_request_line(r)]


@catalog_group.command("approve")
@click.argument("request_id")
@click.option("--reason", default="", help="Why (recorded and audited).")
@click.option("--role", "roles", multiple=True, help="A role you act in (admin decides any request).")
@_output
def approve(state: _Ctx, request_id: str, reason: str, roles: tuple[str, ...]) -> tuple[Any, list[str]]:
    """Approve an access request: a usage policy for its purpose until its expiry."""
    return _decide(state, request_id, True, reason, roles)


@catalog_group.command("reject")
@click.argument("request_id")
@click.option("--reason", default="", help="Why (recorded and audited).")
@click.option("--role", "roles", multiple=True, help="A role you act in (admin decides any request).")
@_output
def reject(state: _Ctx, request_id: str, reason: str, roles: tuple[str, ...]) -> tuple[Any, list[str]]:
    """Reject a pending access request, or revoke an approved one (its policy is removed)."""
    return _decide(state, request_id, False, reason, roles)


@catalog_group.command("requests")
@click.option("--dataset", "dataset_id", help="Only requests for this dataset.")
@click.option("--requester", help="Only requests by this user.")
@click.option("--status", type=click.Choice(["pending", "approved", "rejected", "revoked", "expired"]))
@_output
def requests(state: _Ctx, dataset_id: str | None, requester: str | None, status: str | None) -> tuple[Any, list[str]]:
    """Access requests, newest first."""
    found = state.catalog().access_requests(dataset_id=dataset_id, requester=requester, status=status)
    return found, [_request_line(r) for r in found] or ["no access requests"]


@catalog_group.command("export")
@click.argument("dataset_id", required=False)
@click.option("--format", "format_", type=click.Choice(["jsonld", "turtle"]), default="jsonld", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file (default: stdout).")
@click.pass_obj
def export(state: _Ctx, dataset_id: str | None, format_: str, output: str | None) -> None:
    """DCAT-AP 3 of one dataset (with its versions and the job that made it) or of the whole catalog."""
    from xtremehub.catalog.dcat import export_catalog, export_dataset

    cat = state.catalog()
    if dataset_id is None:
        text = export_catalog(cat, format=format_)  # type: ignore[arg-type]
    else:
        ds = cat.get(dataset_id)
        graph = cat.lineage(dataset_id, direction="up", depth=1) if ds.kind == "derived" else None
        job = next((j for j in graph.jobs if dataset_id in j.outputs), None) if graph else None
        text = export_dataset(ds, cat.versions(dataset_id), format=format_, job=job)  # type: ignore[arg-type]
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)
