"""Authorisation decision latency, Cedar (ours) vs Casbin, and audit-log append throughput, one run.

The same policies in both engines: research role reads the ``s3://lungs`` bucket for purpose
``research`` only; surgeons read the ``surgery`` scope 08-18 h; curators write under
``s3://lungs/ct/``; nobody touches ``s3://lungs/raw/`` (a deny that overrides); plus
``--filler`` policies ``role<i> may read dataset ds<i>`` so that neither engine wins by having
nothing to scan. Deny by default in both. Requests: a fixed mix of 8 (4 allowed, 4 denied:
wrong purpose, outside the hours, missing role, the raw prefix), evaluated round-robin.

* cedar: :class:`~xtremehub.security.policy.CedarAuthorizer` ``decide`` (our wrapper: entities
  and context built per request, Cedar evaluated by cedarpy's Rust engine, Decision built).
* casbin: ``pycasbin`` ``enforce_ex`` with an RBAC+ABAC model (roles passed with the request,
  ``keyMatch`` for prefixes, a Python function for the time window) and the same Decision built.

Audit: records/s appended to a local file log by 1 and 4 threads (no fsync), with fsync, and
decisions/s through ``Audited(CedarAuthorizer)`` (decide + append).

Per-decision latency is timed call by call (``perf_counter_ns``); each round reports p50/p95;
the summary gives the median over rounds and the casbin/cedar ratio of the medians.

Run:  .venv/bin/python bench/security_policy.py [--rounds 3] [--decisions 20000] [--filler 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from xtremehub.security.audit import AuditConfig, Audited, AuditLog
from xtremehub.security.authz import AccessRequest, Action, Decision, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig

CEDAR = """
@id("research-read")
permit(principal in XHub::Role::"research", action == XHub::Action::"read", resource in XHub::Bucket::"s3://lungs")
when { context.purpose == "research" };
@id("surgery-hours")
permit(principal in XHub::Role::"surgeon", action == XHub::Action::"read", resource in XHub::Scope::"surgery")
when { context.hour >= 8 && context.hour < 18 };
@id("curators-write-ct")
permit(principal in XHub::Role::"curator", action == XHub::Action::"write", resource in XHub::Prefix::"s3://lungs/ct/");
@id("no-raw")
forbid(principal, action, resource in XHub::Prefix::"s3://lungs/raw/");
"""

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act, purpose, hour

[policy_definition]
p = sub, obj, act, purpose, hfrom, hto, eft, id

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.sub == "*" || hasRole(r.sub, p.sub)) && keyMatch(r.obj, p.obj) && (p.act == "*" || r.act == p.act) \
&& (p.purpose == "*" || r.purpose == p.purpose) && inHours(r.hour, p.hfrom, p.hto)
"""

CASBIN_POLICY = """p, research, object:s3://lungs/*, read, research, 0, 24, allow, research-read
p, surgeon, stream:surgery/*, read, *, 8, 18, allow, surgery-hours
p, curator, object:s3://lungs/ct/*, write, *, 0, 24, allow, curators-write-ct
p, *, object:s3://lungs/raw/*, *, *, 0, 24, deny, no-raw
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def requests() -> list[tuple[AccessRequest, bool]]:
    alice = Identity("alice", roles=frozenset({"research"}))
    sam = Identity("sam", roles=frozenset({"surgeon"}))
    carol = Identity("carol", roles=frozenset({"curator"}))
    bob = Identity("bob", roles=frozenset({"role7"}))
    day, night = at("2026-12-07T10:00:00"), at("2026-12-07T22:00:00")
    obj = Resource("object", "s3://lungs/ct/2026/p17/ct.fq.gz")
    return [
        (AccessRequest(alice, Action.READ, obj, purpose="research", at=day), True),
        (AccessRequest(alice, Action.READ, obj, purpose="marketing", at=day), False),
        (AccessRequest(sam, Action.READ, Resource("stream", "surgery/or-1"), at=day), True),
        (AccessRequest(sam, Action.READ, Resource("stream", "surgery/or-1"), at=night), False),
        (AccessRequest(carol, Action.WRITE, obj, at=day), True),
        (AccessRequest(bob, Action.WRITE, obj, at=day), False),
        (AccessRequest(bob, Action.READ, Resource("dataset", "ds7"), at=day), True),
        (
            AccessRequest(alice, Action.READ, Resource("object", "s3://lungs/raw/x.bam"), purpose="research", at=day),
            False,
        ),
    ]


@dataclass
class CasbinAuthorizer:
    """The same policies in pycasbin, wrapped to take an AccessRequest and give a Decision."""

    enforcer: object

    @classmethod
    def build(cls, root: Path, filler: int) -> CasbinAuthorizer:
        import casbin

        (root / "model.conf").write_text(CASBIN_MODEL)
        extra = "".join(f"p, role{i}, dataset:ds{i}, read, *, 0, 24, allow, filler-{i}\n" for i in range(filler))
        (root / "policy.csv").write_text(CASBIN_POLICY + extra)
        enforcer = casbin.Enforcer(str(root / "model.conf"), str(root / "policy.csv"))
        enforcer.add_function("hasRole", lambda ident, role: role in ident.roles)
        enforcer.add_function("inHours", lambda hour, lo, hi: int(lo) <= hour < int(hi))
        return cls(enforcer)

    def decide(self, request: AccessRequest) -> Decision:
        hour = datetime.fromtimestamp(request.at, UTC).hour
        obj = f"{request.resource.kind}:{request.resource.name}"
        allowed, explain = self.enforcer.enforce_ex(  # type: ignore[attr-defined]
            request.identity, obj, request.action.value, request.purpose or "", hour
        )
        policy = explain[-1] if explain else "default-deny"
        return Decision(bool(allowed), "casbin", policy)


def latencies(decide: Callable[[AccessRequest], Decision], reqs: list[tuple[AccessRequest, bool]], n: int) -> list[int]:
    for req, expected in reqs:  # warm up, and both engines must agree with the expectation
        assert decide(req).allowed == expected, (req, expected)
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        req = reqs[i % len(reqs)][0]
        t0 = clock()
        decide(req)
        out.append(clock() - t0)
    return out


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def audit_rate(root: Path, threads: int, n: int, fsync: bool) -> float:
    log = AuditLog(AuditConfig(location=str(root / f"a-{threads}-{fsync}-{time.monotonic_ns()}.log"),
                               signing_key=root / "audit.key", fsync=fsync))  # fmt: skip
    per = n // threads

    def work(t: int) -> None:
        for i in range(per):
            log.append("decision", subject=f"t{t}", action="read", resource=f"dataset:d{i}", decision="allow",
                       policy="research-read", roles=("research",), purpose="research")  # fmt: skip

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - t0
    log.close()
    return per * threads / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--decisions", type=int, default=20000)
    ap.add_argument("--filler", type=int, default=100)
    ap.add_argument("--appends", type=int, default=20000)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="xhub-bench-policy-"))
    (root / "policies").mkdir()
    filler = "".join(
        f'@id("filler-{i}") permit(principal in XHub::Role::"role{i}", action == XHub::Action::"read", '
        f'resource == XHub::Dataset::"ds{i}");\n'
        for i in range(args.filler)
    )
    (root / "policies" / "bench.cedar").write_text(CEDAR + filler)
    cedar = CedarAuthorizer(PolicyConfig(sources=(str(root / "policies"),), reload_interval=0))
    reqs = requests()
    engines: list[tuple[str, CedarAuthorizer | CasbinAuthorizer]] = [("cedar", cedar)]
    try:
        casbin = CasbinAuthorizer.build(root, args.filler)
    except ImportError:
        print("pycasbin is not installed (it is not a dependency): pip install pycasbin to compare")
    else:
        assert [cedar.decide(r).policy_id for r, _ in reqs] == [casbin.decide(r).policy_id for r, _ in reqs]
        engines.append(("casbin", casbin))

    rows: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in engines}
    rates: dict[str, list[float]] = {"file 1 thread": [], "file 4 threads": [], "file fsync": [], "audited decide": []}
    for rnd in range(args.rounds):
        for name, engine in engines:
            lat = latencies(engine.decide, reqs, args.decisions)
            rows[name].append((pct(lat, 0.5), pct(lat, 0.95)))
            print(f"round {rnd + 1} {name:<7} p50 {rows[name][-1][0]:8.1f} us  p95 {rows[name][-1][1]:8.1f} us")
        rates["file 1 thread"].append(audit_rate(root, 1, args.appends, fsync=False))
        rates["file 4 threads"].append(audit_rate(root, 4, args.appends, fsync=False))
        rates["file fsync"].append(audit_rate(root, 1, max(200, args.appends // 20), fsync=True))
        log = AuditLog(AuditConfig(location=str(root / f"audited-{rnd}.log"), signing_key=root / "audit.key"))
        audited = Audited(cedar, log)
        t0 = time.perf_counter()
        for i in range(args.appends // 4):
            audited.decide(reqs[i % len(reqs)][0])
        rates["audited decide"].append(args.appends // 4 / (time.perf_counter() - t0))
        log.close()
        print(f"round {rnd + 1} audit  " + "  ".join(f"{k}: {v[-1]:,.0f}/s" for k, v in rates.items()))

    print("\nsummary (median of rounds; spread = min..max of the per-round medians)")
    for name, vals in rows.items():
        p50s, p95s = [v[0] for v in vals], [v[1] for v in vals]
        print(f"  {name:<7} p50 {statistics.median(p50s):7.1f} us ({min(p50s):.1f}..{max(p50s):.1f})  "
              f"p95 {statistics.median(p95s):7.1f} us ({min(p95s):.1f}..{max(p95s):.1f})")  # fmt: skip
    if "casbin" in rows:
        c50, c95 = (statistics.median(v[i] for v in rows["cedar"]) for i in (0, 1))
        k50, k95 = (statistics.median(v[i] for v in rows["casbin"]) for i in (0, 1))
        print(f"  casbin/cedar: p50 {k50 / c50:.2f}x, p95 {k95 / c95:.2f}x  ({args.filler} filler policies)")
    for name, vals in rates.items():
        print(f"  audit {name:<15} {statistics.median(vals):>10,.0f} records/s ({min(vals):,.0f}..{max(vals):,.0f})")


if __name__ == "__main__":
    main()
