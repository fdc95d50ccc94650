"""Catalog at scale: search latency and registration throughput, SQLite vs PostgreSQL, one run.

A catalog of ``--datasets`` (default 100,000) synthetic but realistic datasets (six formats
with per-format facts: read counts and instruments, contigs and samples, m/z ranges, point
bounds and CRS, raster bands; 200 owners, 120 tags, 5 licences, 300 projects) is built in
each backend:

* registration throughput: ``--register`` datasets through ``Catalog.register`` one by one
  (a transaction each: dataset, tags, first version, full-text row), then a second version of
  each of ``--register // 4`` of them (a new etag);
* the rest is bulk-loaded with the same rows (the search document built by the store's own
  code, the full-text index filled by the migration's triggers / GIN index);
* search: a fixed mix of queries, each a full ``Catalog.search`` call (page of 20, total and
  the five facet counts): one common word, a rare word pair, two words, a word with a facet
  filter, facet-only browsing, and the empty query (every dataset, all facets). Each query is
  timed call by call (``perf_counter_ns``) after one warm-up pass; p50/p95 per kind and overall,
  three ways: **cold** (the count cache emptied before every call: what a query costs the
  first time after a write), **cached** (the same queries again, nothing written in between),
  and **secured** (security on: the REST API's ``visible_search`` with a Cedar policy set, the
  caller's listing condition computed by partial evaluation on every call, the cache emptied,
  and the page's datasets decided by Cedar in one batch, as the REST API decides them);
* baselines in the same run, on the same databases: the search as it was before
  (``bench/catalog_baseline.py``: exact counts over every match; with security on, every
  match decided by Cedar: the first query of each kind, once, its result also checked against
  the new secured search), and the same text
  queries answered by ``LIKE '%word%'`` over the search documents (no full-text index);
* DCAT-AP 3 export (``--dcat N``, 0 skips it): the whole catalog as Turtle and as JSON-LD
  (``export_catalog``: seconds and size), and ``N`` datasets one by one with their versions (as
  ``GET /api/v1/datasets/{id}/dcat`` exports them; p50/p95).

PostgreSQL runs on a server started for the run (``xtremehub.testing.postgres``, fsync off).

Run:  .venv/bin/python bench/catalog.py [--quick] [--datasets 100000] [--register 2000] [--rounds 3]

"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import catalog_baseline
from xtremehub.catalog import SearchQuery, open_catalog
from xtremehub.catalog.dcat import export_catalog, export_dataset
from xtremehub.catalog.store import SqlCatalog
from xtremehub.catalog.store.schema import dataset_tags, dataset_versions, datasets
from xtremehub.catalog.store.search import search_doc, words
from xtremehub.config import Settings
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig
from xtremehub.testing.postgres import PostgresServer
from xtremehub.web.auth import Gate
from xtremehub.web.dataset_rules import dataset_attributes, dataset_resource, visible_search

FORMATS = ("fastq.gz", "vcf.gz", "imzml", "laz", "cog", "csv")
INSTRUMENTS = ("NovaSeq", "MiSeq", "HiSeq", "PacBio", "Orbitrap", "timsTOF", "Riegl", "Sentinel2")
LICENCES = ("CC-BY-4.0", "CC0-1.0", "CC-BY-NC-4.0", "ODbL-1.0", "proprietary")
SITES = ("barcelona", "tarragona", "lleida", "girona", "madrid", "lisbon", "porto", "lyon", "milan", "berlin")
ORGANISMS = ("human", "mouse", "zebrafish", "arabidopsis", "yeast", "ecoli", "maize", "rice")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "do", "ga")


def _word(rng: random.Random, n: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(n))


class Synth:
    """Deterministic synthetic catalog content."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.owners = [f"user{i:03d}" for i in range(200)]
        self.tags = sorted({_word(rng, 2) + str(i % 7) for i in range(120)})
        self.projects = sorted({_word(rng, 3) for _ in range(300)})
        self.vocab = sorted({_word(rng, rng.choice((2, 3, 4))) for _ in range(3000)})

    def facts(self, fmt: str, i: int) -> dict[str, Any]:
        r = self.rng
        if fmt == "fastq.gz":
            reads = r.randrange(10_000, 50_000_000)
            return {
                "reads": reads,
                "bases": reads * 150,
                "mean_length": 150,
                "gc": round(r.uniform(0.35, 0.6), 3),
                "instrument": r.choice(INSTRUMENTS[:4]),
                "paired": r.random() < 0.5,
            }
        if fmt == "vcf.gz":
            contigs = [f"chr{c}" for c in range(1, r.randrange(2, 23))]
            return {
                "contigs": contigs,
                "samples": r.randrange(1, 3000),
                "variants": r.randrange(1000, 9_000_000),
                "reference": r.choice(("GRCh38", "GRCh37", "GRCm39")),
            }
        if fmt == "imzml":
            lo = r.uniform(50, 300)
            return {
                "spectra": r.randrange(1000, 500_000),
                "mz_range": [round(lo, 2), round(lo + r.uniform(200, 1500), 2)],
                "pixel_size_um": r.choice((5, 10, 20, 50)),
                "instrument": r.choice(INSTRUMENTS[4:6]),
                "polarity": r.choice(("positive", "negative")),
            }
        if fmt == "laz":
            x, y = r.uniform(2e5, 5e5), r.uniform(4.4e6, 4.8e6)
            return {
                "points": r.randrange(10**6, 10**9),
                "bounds": {"x": [x, x + 1000], "y": [y, y + 1000]},
                "crs": "EPSG:25831",
                "point_format": r.choice((1, 3, 6)),
                "scanner": "Riegl",
            }
        if fmt == "cog":
            return {
                "bands": r.choice((1, 3, 4, 13)),
                "width": r.randrange(512, 40_000),
                "height": r.randrange(512, 40_000),
                "crs": r.choice(("EPSG:4326", "EPSG:32631")),
                "dtype": r.choice(("uint16", "float32")),
                "sensor": "Sentinel2",
            }
        return {"rows": r.randrange(10, 10**7), "columns": [_word(r) for _ in range(r.randrange(3, 12))]}

    def dataset(self, i: int) -> dict[str, Any]:
        r = self.rng
        fmt = FORMATS[i % len(FORMATS)]
        project = self.projects[r.randrange(len(self.projects))]
        site, organism = r.choice(SITES), r.choice(ORGANISMS)
        return {
            "url": f"s3://{project}/{site}/{organism}/sample{i:06d}.{fmt}",
            "title": f"{project.capitalize()} {organism} {site} sample {i}",
            "description": " ".join(r.choice(self.vocab) for _ in range(r.randrange(8, 30))),
            "tags": sorted(set(r.sample(self.tags, r.randrange(1, 5)))),
            "licence": r.choice(LICENCES),
            "format": fmt,
            "owner": self.owners[int(r.paretovariate(1.2)) % len(self.owners)],
            "facts": self.facts(fmt, i),
        }


def bulk_load(cat: SqlCatalog, synth: Synth, start: int, stop: int, batch: int = 2000) -> float:
    """Insert datasets ``start..stop`` in batches (the store's own search documents); seconds."""
    t0 = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    engine = cat._engine
    with engine.connect() as conn:
        pk0 = conn.execute(sa.select(sa.func.coalesce(sa.func.max(datasets.c.pk), 0))).scalar_one()
    for lo in range(start, stop, batch):
        ds_rows, tag_rows, ver_rows = [], [], []
        for n, i in enumerate(range(lo, min(lo + batch, stop))):
            d = synth.dataset(i)
            pk = pk0 + (lo - start) + n + 1
            t = base + timedelta(seconds=i)
            doc = search_doc(
                title=d["title"],
                description=d["description"],
                tags=d["tags"],
                url=d["url"],
                facts=d["facts"],
                extra=(d["format"], d["owner"], d["licence"], "object"),
            )
            ds_rows.append(
                {
                    "pk": pk,
                    "id": f"ds-bench{i:08d}",
                    "kind": "object",
                    "url": d["url"],
                    "title": d["title"],
                    "description": d["description"],
                    "owner": d["owner"],
                    "tags": d["tags"],
                    "licence": d["licence"],
                    "format": d["format"],
                    "created": t,
                    "modified": t,
                    "etag": f"{i:016x}",
                    "latest_version": 1,
                    "facts": d["facts"],
                    "health": None,
                    "search_doc": doc,
                }
            )
            tag_rows += [{"dataset_pk": pk, "tag": tag} for tag in d["tags"]]
            ver_rows.append(
                {
                    "dataset_pk": pk,
                    "number": 1,
                    "source_version": f"etag-{i}",
                    "created": t,
                    "distributions": [{"url": d["url"], "format": d["format"]}],
                    "facts": d["facts"],
                }
            )
        with engine.begin() as conn:
            conn.execute(sa.insert(datasets), ds_rows)
            conn.execute(sa.insert(dataset_tags), tag_rows)
            conn.execute(sa.insert(dataset_versions), ver_rows)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('datasets', 'pk'), (SELECT max(pk) FROM datasets))"
            )
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


def register_one_by_one(cat: SqlCatalog, synth: Synth, start: int, n: int) -> tuple[float, float]:
    """Datasets/s through ``register`` (new datasets), and new versions/s (a new etag)."""
    items = [synth.dataset(i) for i in range(start, start + n)]
    t0 = time.perf_counter()
    for d in items:
        cat.register(
            d["url"],
            actor=d["owner"],
            title=d["title"],
            description=d["description"],
            tags=d["tags"],
            licence=d["licence"],
            format=d["format"],
            facts=d["facts"],
            source_version="etag-1",
        )
    first = n / (time.perf_counter() - t0)
    again = items[: max(1, n // 4)]
    t0 = time.perf_counter()
    for d in again:
        cat.register(d["url"], actor=d["owner"], facts={**d["facts"], "rev": 2}, source_version="etag-2")
    return first, len(again) / (time.perf_counter() - t0)


def queries(synth: Synth, n: int) -> dict[str, list[SearchQuery]]:
    r = random.Random(11)
    out: dict[str, list[SearchQuery]] = {
        k: [] for k in ("one word", "rare pair", "two words", "word+facet", "facets only")
    }
    for _ in range(n):
        d = synth.dataset(r.randrange(10**6))
        out["one word"].append(SearchQuery(text=r.choice((*INSTRUMENTS, *ORGANISMS, *SITES)).lower()))
        out["rare pair"].append(SearchQuery(text=f"{d['title'].split()[0]} {r.choice(synth.vocab)}"))
        out["two words"].append(SearchQuery(text=f"{r.choice(ORGANISMS)} {r.choice(SITES)}"))
        out["word+facet"].append(
            SearchQuery(
                text=r.choice(SITES), filters={"format": (r.choice(FORMATS),), "licence": (r.choice(LICENCES),)}
            )
        )
        out["facets only"].append(
            SearchQuery(filters={"tag": (r.choice(synth.tags),), "owner": (r.choice(synth.owners[:20]),)})
        )
    out["empty"] = [SearchQuery()] * max(3, n // 4)
    return out


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    out = []
    for call in calls:
        t0 = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def like_baseline(cat: SqlCatalog, text: str) -> Callable[[], Any]:
    conds = [datasets.c.search_doc.like(f"%{w}%") for w in words(text)]
    stmt_count = sa.select(sa.func.count()).select_from(datasets).where(*conds)
    stmt_page = sa.select(datasets).where(*conds).order_by(datasets.c.modified.desc()).limit(20)

    def run() -> None:
        with cat._engine.connect() as conn:
            conn.execute(stmt_page).all()
            conn.execute(stmt_count).scalar()

    return run


#: The policies of the secured runs: analysts read datasets carrying one of 40 tags (of 120) and
#: their own; nobody reads an embargoed tag's datasets but their owner; a reader sees ~35%.
POLICIES = """
@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");
@id("own") permit(principal, action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource.owner == "user003" && principal == XHub::User::"user003" };
@id("analysts") permit(principal in XHub::Role::"analyst", action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has tags && resource.tags.containsAny(TAGS) };
@id("embargo") forbid(principal, action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource.tags.contains(EMBARGO) }
  unless { resource.owner == "user003" && principal == XHub::User::"user003" };
"""


def secured(home: Path, synth: Synth) -> tuple[Gate, Identity, Callable[[Any], bool]]:
    """A Cedar gate, the reader, and one dataset's decision (main's ``visible_search`` took it)."""
    where = home / "bench-policies"
    where.mkdir(exist_ok=True)
    tags = "[" + ", ".join(f'"{t}"' for t in synth.tags[:40]) + "]"
    (where / "bench.cedar").write_text(POLICIES.replace("TAGS", tags).replace("EMBARGO", f'"{synth.tags[7]}"'))
    authz = CedarAuthorizer(PolicyConfig(sources=(str(where),), reload_interval=0))
    gate = Gate(None, authz)
    reader = Identity("user003", roles=frozenset({"analyst"}))

    def may_read(d: Any) -> bool:
        resource = Resource("dataset", d.id, dataset_attributes(d))
        return authz.decide(AccessRequest(reader, Action.READ, resource)).allowed

    return gate, reader, may_read


def backend(name: str, url: str, home: Path, args: argparse.Namespace, synth: Synth) -> dict[str, Any]:
    cat = open_catalog(url, settings=Settings(home=home))
    reg, ver = register_one_by_one(cat, synth, 0, args.register)
    load_s = bulk_load(cat, synth, args.register, args.datasets)
    total = cat.search(SearchQuery(limit=1)).total
    qs = queries(synth, args.queries)
    gate, reader, may_read = secured(home, synth)

    def cold(q: SearchQuery) -> Any:
        cat.counts.clear()
        return cat.search(q)

    def read_page(page: Any) -> list[bool]:  # as the REST API decides a page: in one batch
        return gate.allowed_each(reader, Action.READ, [dataset_resource(d) for d in page])

    def secured_search(q: SearchQuery) -> Any:
        cat.counts.clear()
        return visible_search(cat.search, q, read_page, gate.readable(reader, "dataset"))

    def old(q: SearchQuery) -> Any:
        return catalog_baseline.search(cat._engine, q)

    for kind_qs in qs.values():  # warm-up pass
        for q in kind_qs[:3]:
            cold(q)
            old(q)
            secured_search(q)
    rounds: list[dict[str, list[float]]] = []
    checks: list[str] = []
    for n in range(args.rounds):
        per: dict[str, list[float]] = {}
        for kind, kind_qs in qs.items():
            per[f"{kind}|cold"] = timed([lambda q=q: cold(q) for q in kind_qs])
            per[f"{kind}|cached"] = timed([lambda q=q: cat.search(q) for q in kind_qs])
            per[f"{kind}|secured"] = timed([lambda q=q: secured_search(q) for q in kind_qs])
            per[f"{kind}|before"] = timed([lambda q=q: old(q) for q in kind_qs])
            if n == 0:  # the old secured search decides every match: one query per kind, checked too
                q = kind_qs[0]
                t0 = time.perf_counter_ns()
                exact = catalog_baseline.visible_search(old, q, may_read)
                per[f"{kind}|before secured"] = [(time.perf_counter_ns() - t0) / 1e6]
                checks.append(check(kind, secured_search(q), exact))
        text_qs = qs["one word"][: args.queries // 2] + qs["two words"][: args.queries // 2]
        per["fts text"] = timed([lambda q=q: cold(SearchQuery(text=q.text, limit=20)) for q in text_qs])
        per["LIKE text"] = timed([like_baseline(cat, q.text) for q in text_qs])
        rounds.append(per)
    dcat = export_times(cat, args.dcat) if args.dcat else {}
    cat.close()
    return {
        "dcat": dcat,
        "name": name,
        "register": reg,
        "version": ver,
        "bulk": (args.datasets - args.register) / load_s,
        "total": total,
        "rounds": rounds,
        "checks": "; ".join(checks),
    }


def export_times(cat: SqlCatalog, sample: int) -> dict[str, Any]:
    """Seconds and bytes of the whole catalog as DCAT-AP 3 (Turtle, JSON-LD), and per-dataset
    export times (p50/p95 ms over ``sample`` datasets, versions read as the REST API reads them)."""
    out: dict[str, Any] = {}
    for fmt in ("turtle", "jsonld"):
        t0 = time.perf_counter()
        text = export_catalog(cat, format=fmt)
        out[fmt] = (time.perf_counter() - t0, len(text.encode()))
        del text
    some = cat.search(SearchQuery(limit=min(sample, 200))).items
    one = timed([lambda d=d: export_dataset(d, cat.versions(d.id), format="turtle") for d in some])
    out["one"] = (pct(one, 50), pct(one, 95))
    return out


def check(kind: str, fast: Any, exact: Any) -> str:
    """Whether the secured search (listing condition) agrees with Cedar deciding every match."""
    same = fast.total == exact.total or (fast.total_is_lower_bound and exact.total >= fast.total)
    ids = [d.id for d in fast.items] == [d.id for d in exact.items]
    lower = "+" if fast.total_is_lower_bound else ""
    return f"{kind}: {fast.total}{lower} vs {exact.total} {'ok' if same and ids else 'DIFFERENT'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10,000 datasets, 500 registered, 1 round")
    ap.add_argument("--datasets", type=int, default=100_000)
    ap.add_argument("--register", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=40, help="queries per kind")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument(
        "--dcat",
        type=int,
        default=100,
        help="time the DCAT-AP export of the whole catalog and of this many datasets (0: skip)",
    )
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.register, args.rounds, args.queries = 10_000, 500, 1, 20
    started = datetime.now(UTC)
    results = []
    with tempfile.TemporaryDirectory(prefix="xhub-bench-catalog-") as tmp:
        for name in args.backends.split(","):
            home = Path(tmp) / name
            home.mkdir()
            if name == "sqlite":
                results.append(backend(name, f"sqlite:///{home / 'catalog.db'}", home, args, Synth()))
            else:
                with PostgresServer.start() as pg:
                    results.append(backend(name, pg.create_database("bench"), home, args, Synth()))
    load = os.getloadavg()
    print(
        f"\n{args.datasets} datasets, {args.register} registered one by one; {args.rounds} rounds; "
        f"{started:%Y-%m-%d %H:%M}-{datetime.now(UTC):%H:%M} UTC; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print("\n| backend | register datasets/s | new versions/s | bulk load rows/s | datasets |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {r['register']:.0f} | {r['version']:.0f} | {r['bulk']:.0f} | {r['total']} |")
    kinds = [k for k in results[0]["rounds"][0] if "|" in k]
    classes = list(dict.fromkeys(k.split("|")[0] for k in kinds))
    ways = list(dict.fromkeys(k.split("|")[1] for k in kinds))
    print(
        "\n| search (ms): median (min-max) over rounds | "
        + " | ".join(f"{r['name']} p50 | {r['name']} p95" for r in results)
        + " |"
    )
    print("|---|" + "---:|" * (2 * len(results)))
    for way in ways:
        for kind in [*classes, "all search() calls"]:
            cells = []
            for r in results:
                for p in (50, 95):
                    have = [rd for rd in r["rounds"] if any(k.endswith("|" + way) for k in rd)]
                    if kind == "all search() calls":
                        vals = [pct([v for c in classes for v in rd.get(f"{c}|{way}", [])], p) for rd in have]
                    else:
                        vals = [pct(rd[f"{kind}|{way}"], p) for rd in have if f"{kind}|{way}" in rd]
                    cells.append(f"{statistics.median(vals):.1f} ({min(vals):.1f}-{max(vals):.1f})" if vals else "")
            print(f"| {kind}, {way} | " + " | ".join(cells) + " |")
    for kind in ("fts text", "LIKE text"):
        cells = []
        for r in results:
            for p in (50, 95):
                vals = [pct(rd[kind], p) for rd in r["rounds"]]
                cells.append(f"{statistics.median(vals):.1f} ({min(vals):.1f}-{max(vals):.1f})")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    for r in results:
        if r["dcat"]:
            (ttl_s, ttl_b), (js_s, js_b), (p50, p95) = r["dcat"]["turtle"], r["dcat"]["jsonld"], r["dcat"]["one"]
            print(
                f"\n{r['name']} DCAT-AP 3 export of all {r['total']} datasets: "
                f"Turtle {ttl_s:.1f} s ({ttl_b / 2**20:.0f} MiB), "
                f"JSON-LD {js_s:.1f} s ({js_b / 2**20:.0f} MiB); one dataset (Turtle, with its versions) "
                f"p50 {p50:.1f} / p95 {p95:.1f} ms"
            )
    for r in results:
        print(f"\n{r['name']} secured totals vs Cedar on every match: {r['checks']}")
    print()
    for r in results:
        fts = statistics.median(pct(rd["fts text"], 50) for rd in r["rounds"])
        like = statistics.median(pct(rd["LIKE text"], 50) for rd in r["rounds"])
        print(f"{r['name']}: LIKE baseline / full-text index, p50: {like / fts:.1f}x ({like:.1f} vs {fts:.1f} ms)")


if __name__ == "__main__":
    main()
