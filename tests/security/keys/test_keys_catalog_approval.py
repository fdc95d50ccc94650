"""An approved catalog access request releases the dataset's key for its purpose until its expiry.

The key service knows a catalog dataset by its catalog id (``Dataset.key_name``); the approval's
usage policy covers ``XHub::Dataset::"<id>"`` and what is inside it, its key included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from keyrelease_support import MASTER, allowed_task, cli_env, keys_serve

from xtremehub.catalog import open_catalog
from xtremehub.catalog.store.access import usage_policy_source
from xtremehub.cli import cli
from xtremehub.config import Settings
from xtremehub.errors import KeyReleaseDenied
from xtremehub.security.attest import measure
from xtremehub.security.audit import AuditConfig, AuditLog, read_lines
from xtremehub.security.authz import ReloadableAuthorizer
from xtremehub.security.identity import Identity
from xtremehub.security.keypolicy import KeyPolicy
from xtremehub.security.keyservice import KeyService
from xtremehub.security.keyservice_client import KeyClient, ServiceKeys
from xtremehub.security.keyservice_store import MasterKey
from xtremehub.security.policy import PolicyConfig, build_authorizer

DATA_KEY = b"d" * 32
BOB = Identity("bob")


def test_an_approval_releases_the_key_for_its_purpose_until_it_expires(
    tmp_path: Path, audit: list[dict[str, Any]]
) -> None:
    settings = Settings(home=tmp_path / "home")
    log = AuditLog(AuditConfig(location=str(tmp_path / "audit.log"), signing_key=tmp_path / "audit.key"))
    authorizer = build_authorizer(PolicyConfig(sources=(usage_policy_source(settings),), reload_interval=0), log)
    assert isinstance(authorizer, ReloadableAuthorizer)
    service = KeyService(tmp_path / "keys", MasterKey(MASTER), authorizer=authorizer, audit=audit.append)
    with open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}", settings=settings) as catalog:
        catalog.on_policy_change(lambda: authorizer.reload(force=True))  # as create_app wires it
        ds = catalog.register("s3://clinic/cohort.csv", actor="carol", facts={}, source_version="1")
        assert ds.key_name == ds.id
        service.create_dataset(KeyPolicy(ds.key_name, measurements=frozenset({measure(allowed_task)})))

        def wrap(purpose: str) -> bytes:
            token = service.issue_job_token(
                identity=BOB, job_id=f"job-{purpose}", datasets=[ds.key_name], purpose=purpose
            )
            keys = ServiceKeys(service, token, allowed_task)
            return keys.unwrap(ds.key_name, keys.wrap(ds.key_name, DATA_KEY))

        with pytest.raises(KeyReleaseDenied, match="deny by default"):
            wrap("cohort study")  # not approved yet
        expires = datetime.now(UTC) + timedelta(seconds=2.5)
        asked = catalog.request_access(ds.id, actor="bob", purpose="cohort study", expires=expires)
        approved = catalog.decide(asked.id, approve=True, actor="carol", if_match=asked.etag)

        assert wrap("cohort study") == DATA_KEY
        with pytest.raises(KeyReleaseDenied, match="deny by default"):
            wrap("marketing")
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
        with pytest.raises(KeyReleaseDenied, match="deny by default"):
            wrap("cohort study")  # expired
    log.close()

    releases = [(r["outcome"], r["subject"], r["purpose"]) for r in audit if r["event"] == "key.release"]
    assert releases == [
        ("deny", "bob", "cohort study"),
        ("allow", "bob", "cohort study"),
        ("deny", "bob", "marketing"),
        ("deny", "bob", "cohort study"),
    ]
    decisions = [json.loads(line) for _, line in read_lines(log.location)]
    keyed = [d for d in decisions if d.get("kind") == "decision" and d.get("resource") == f"key:{ds.id}"]
    assert [(d["decision"], d["policy"]) for d in keyed][1] == ("allow", approved.policy_id)
    assert [d["decision"] for d in keyed] == ["deny", "allow", "deny", "deny"]


def _released(tokens: KeyService, url: str, purpose: str, dataset: str) -> bytes | str:
    """The data key through the key service at ``url`` for a job of bob's with ``purpose`` (its job
    token issued by ``tokens``, which has the same master key), or the refusal."""
    token = tokens.issue_job_token(identity=BOB, job_id=f"job-{purpose}", datasets=[dataset], purpose=purpose)
    client = KeyClient(url)
    try:
        keys = ServiceKeys(client, token, allowed_task)
        return keys.unwrap(dataset, keys.wrap(dataset, DATA_KEY))
    except KeyReleaseDenied as exc:
        return str(exc)
    finally:
        client.close()


def _until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_keys_serve_with_policy_releases_keys_of_approved_requests(tmp_path: Path) -> None:
    """``xhub keys serve --policy DIR`` decides with DIR and the catalog's usage policies: bob, whom
    the key policy's lists do not name, gets the key over HTTP while his approval holds, for its
    purpose only; a revocation in another process takes it back within the reload interval."""
    home = tmp_path / "home"
    settings = Settings(home=home)
    base = tmp_path / "pol"
    base.mkdir()
    (base / "base.cedar").write_text(
        '@id("curators") permit(principal in XHub::Role::"curator", action, resource is XHub::Key);\n'
    )
    env = cli_env(tmp_path)
    keys_dir = tmp_path / "k"
    with open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}", settings=settings) as catalog:
        ds = catalog.register("s3://clinic/cohort.csv", actor="carol", facts={}, source_version="1")
        # the key policy's lists name alice only: without --policy bob is refused by them
        local = KeyService(keys_dir, MasterKey(MASTER))
        local.create_dataset(
            KeyPolicy(
                ds.key_name,
                subjects=frozenset({"alice"}),
                purposes=frozenset({"cohort study"}),
                measurements=frozenset({measure(allowed_task)}),
            )
        )
        with keys_serve(keys_dir, "--policy", str(base), env=env, expect="(policies)") as served:
            url = served.url
            refused = _released(local, url, "cohort study", ds.key_name)
            assert isinstance(refused, str)
            assert "deny by default" in refused  # decided by the policies, not the lists

            asked = catalog.request_access(ds.id, actor="bob", purpose="cohort study")
            approved = catalog.decide(asked.id, approve=True, actor="carol", if_match=asked.etag)
            assert _until(lambda: _released(local, url, "cohort study", ds.key_name) == DATA_KEY)
            other = _released(local, url, "marketing", ds.key_name)
            assert isinstance(other, str)
            assert "deny by default" in other

            catalog.decide(asked.id, approve=False, actor="carol", if_match=approved.etag)
            assert _until(lambda: _released(local, url, "cohort study", ds.key_name) != DATA_KEY)
    assert served.returncode == 0, served.stderr
    assert MASTER.hex() not in served.stderr


def test_keys_serve_refuses_admin_roles_with_policies(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["keys", "--dir", str(tmp_path / "k"), "serve", "--policy", str(tmp_path), "--admin-role", "root"],
        env={"XHUB_MASTER_KEY": MASTER.hex()},
    )
    assert result.exit_code != 0
    assert "--admin-role is for key services without --policy" in str(result.exception)
