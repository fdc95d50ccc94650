"""The cockpit in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The app is served by uvicorn on a free loopback port over a real SQLite catalog holding a few
of the real test files, with security on: tokens from an embedded OpenID issuer, obtained by
the login form (password grant) and kept in an HttpOnly cookie. The tests log in, search,
open a dataset and see its preview load, approve an access request, check that HTML in a
description and a tag stays inert text, and take screenshots that they check (a non-empty
PNG, the key texts on the page). Screenshots go to a temporary folder; with
``XHUB_COCKPIT_SCREENSHOTS=docs/images`` they are copied there too (docs/catalog.md shows them).

Playwright drives the *system* Chromium through ``executable_path``: ``playwright install``
would download a browser from a CDN. Chromium missing is a failure that says how to install
it, never a skip.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from xtremehub.catalog import open_catalog
from xtremehub.catalog.model import InputRef, JobRecord
from xtremehub.config import Settings
from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig, UserEntry, hash_secret
from xtremehub.security.oidc import OIDCConfig, OIDCValidator
from xtremehub.web import WebConfig, create_app

pytestmark = pytest.mark.slow

PASSWORD = {"alice": "alice-cockpit-pw", "bob": "bob-cockpit-pw"}
XSS_DESC = 'Look: <script>window.__xss=1</script> and <img src=x onerror="window.__xss=2">'
XSS_TAG = "<img src=x onerror=window.__xss=3>"
INSTALL = "apt-get install -y chromium  (or `make system-deps`; the Makefile lists chromium:chromium)"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(f"Chromium is not installed: the cockpit browser tests need it. Install it with: {INSTALL}")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    catalog: Any
    ids: dict[str, str]
    request_id: str
    shots: Path


def _populate(catalog: Any, testdata: Path) -> tuple[dict[str, str], str]:
    """Real test files (facts as tests/data/FACTS.md gives them), a job, an access request."""
    ids = {}
    ids["reads"] = catalog.register(
        (testdata / "fastq/sample.fastq.bgz").as_uri(),
        actor="alice",
        title="Exome reads, run 7",
        description="2,000 paired-end reads of 101 bp (ERR194146), BGZF-compressed.",
        tags=("genomics", "illumina"),
        licence="CC-BY-4.0",
        format="fastq.gz",
        source_version="v1",
        facts={"reads": 2000, "bases": 202000, "read_length": {"min": 101, "max": 101}, "gzip_members": 11},
    ).id
    ids["calls"] = catalog.register(
        (testdata / "vcf/ex1.vcf.gz").as_uri(),
        actor="alice",
        title="Variant calls, run 7",
        kind="derived",
        description="165 variants in 23 contigs, called from the run 7 reads.",
        tags=("genomics", "variants"),
        licence="CC-BY-4.0",
        format="vcf.gz",
        source_version="v1",
        facts={"variants": 165, "samples": 2, "contigs": 23},
    ).id
    ids["terrain"] = catalog.register(
        (testdata / "las/autzen_trim.laz").as_uri(),
        actor="alice",
        title="Autzen stadium lidar",
        description="110,000 points, LAS 1.2 point format 3.",
        tags=("lidar", "geo"),
        licence="CC0-1.0",
        format="laz",
        source_version="v1",
        facts={"points": 110000, "point_format": 3, "chunks": 3},
    ).id
    ids["ions"] = catalog.register(
        (testdata / "imzml/Example_Continuous.imzML").as_uri(),
        actor="bob",
        title="Mouse brain MSI example",
        description="3 x 3 pixel continuous imzML.",
        tags=("metabolomics",),
        format="imzml",
        source_version="v1",
        facts={"spectra": 9, "mode": "continuous", "grid": [3, 3]},
    ).id
    ids["xss"] = catalog.register(
        "s3://lab/notes/evil.csv", actor="mallory", title="Untrusted upload", description=XSS_DESC,
        tags=(XSS_TAG, "untrusted"), format="csv", source_version="v1", facts={"note": "<b>bold?</b>"},
    ).id  # fmt: skip
    t = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    catalog.record_job(
        JobRecord(
            job_id="call-variants-7", function="pipelines.variants.call", owner="alice", started=t, finished=t,
            inputs=(InputRef(ids["reads"], 1),), outputs=(ids["calls"],),
        )
    )  # fmt: skip
    request = catalog.request_access(ids["reads"], actor="bob", purpose="Train a variant-calling model")
    return ids, request.id


def _telemetry_and_streams(home: Path) -> None:
    from xtremehub.compute.telemetry import TaskTelemetry
    from xtremehub.optimizer.store import TelemetryStore
    from xtremehub.streams.client.manager import StreamManager

    rows = [
        TaskTelemetry(job_id="call-variants-7", call_id=i, worker=f"local-{i % 2}", status="success", submit=100.0,
                      start=100.0 + 0.2 * (i // 2), end=100.35 + 0.2 * (i // 2) + 0.03 * (i % 3), bytes_read=20000 * i,
                      cpu_user=0.3 + 0.01 * i, peak_rss=(120 + 3 * i) << 20)
        for i in range(12)
    ]  # fmt: skip
    (home / "optimizer").mkdir(parents=True, exist_ok=True)
    with TelemetryStore(home / "optimizer" / "telemetry.sqlite") as store:
        store.add(rows, function="pipelines.variants.call")
    with StreamManager.embedded(home / "streams") as manager:
        manager.create_scope("surgery")
        manager.create_stream("surgery", "endoscope")
        manager.create_reader_group("annotators", "surgery", ["endoscope"])
        with manager.create_writer("surgery", "endoscope") as writer:
            for i in range(200):
                writer.write_event(b"f" * 512, routing_key=str(i % 7))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import uvicorn

    testdata = Path(__file__).resolve().parents[1] / "data"  # the `testdata` fixture's folder (module scope here)
    assert testdata.is_dir(), f"test data missing at {testdata}"

    root = tmp_path_factory.mktemp("cockpit")
    home = root / "home"
    settings = Settings(home=home)
    users = {name: UserEntry(name, hash_secret(pw, rounds=4), ("research",), ()) for name, pw in PASSWORD.items()}
    with EmbeddedIssuer(IssuerConfig(audience="xtremehub", users=users)) as issuer:
        catalog = open_catalog(f"sqlite:///{root / 'catalog.sqlite'}", settings=settings)
        ids, request_id = _populate(catalog, testdata)
        _telemetry_and_streams(home)
        validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub"))
        app = create_app(
            WebConfig(security=True, oidc_issuer=issuer.url), catalog=catalog, settings=settings, validator=validator
        )
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name="cockpit-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
            time.sleep(0.05)
        try:
            yield Served(f"http://127.0.0.1:{port}", catalog, ids, request_id, root / "shots")
        finally:
            server.should_exit = True
            thread.join(15)
            catalog.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        # --no-sandbox: the tests may run as root (CI containers), where Chromium's sandbox refuses to start
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _login(browser: Any, served: Served, user: str = "alice") -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(served.url + "/cockpit/datasets")
    page.wait_for_url("**/cockpit/login**")
    page.fill("#username", user)
    page.fill("#password", PASSWORD[user])
    page.click("#login")
    page.wait_for_url("**/cockpit/datasets")
    return page


@pytest.fixture(scope="module")
def alice(browser: Any, served: Served) -> Iterator[Any]:
    page = _login(browser, served)
    yield page
    page.context.close()


def shot(page: Any, served: Served, name: str, *texts: str, full_page: bool = False) -> Path:
    """Screenshot the page, check it (a real picture, the key texts shown), copy it for the docs if asked."""
    served.shots.mkdir(parents=True, exist_ok=True)
    path = served.shots / f"cockpit-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    image = Image.open(io.BytesIO(path.read_bytes()))
    image.load()
    assert image.size[0] == 1280
    assert image.size[1] == 860 if not full_page else image.size[1] >= 860
    assert np.asarray(image.convert("L"), dtype=float).std() > 5, f"{name}: a blank screenshot"
    body = page.inner_text("body").lower()  # innerText follows CSS text-transform
    for text in texts:
        assert text.lower() in body, f"{name}: {text!r} not on the page"
    target = os.environ.get("XHUB_COCKPIT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def test_login_keeps_the_token_in_an_httponly_cookie(browser: Any, served: Served) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(served.url + "/cockpit/access")
    page.wait_for_url("**/cockpit/login**")
    page.fill("#username", "alice")
    page.fill("#password", "wrong")
    page.click("#login")
    assert "Wrong user name or password" in page.inner_text("body")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD["alice"])
    shot(page, served, "login", "Log in", "User name", "Password")
    page.click("#login")
    page.wait_for_url("**/cockpit/access")  # back where the login started
    assert page.inner_text("#viewer") == "alice"
    (cookie,) = [c for c in context.cookies() if c["name"] == "xhub_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert "xhub_session" not in page.evaluate("document.cookie")
    page.click("text=Log out")
    page.wait_for_url("**/cockpit/login")
    page.goto(served.url + "/cockpit/datasets")
    page.wait_for_url("**/cockpit/login**")
    context.close()


def test_search_with_facets(alice: Any, served: Served) -> None:
    page = alice
    page.goto(served.url + "/cockpit/datasets")
    page.fill("#q", "variant")  # htmx fetches the results as one types
    page.wait_for_function("() => document.querySelector('#total').innerText.startsWith('1 dataset')")
    assert "Variant calls, run 7" in page.inner_text("#results")
    assert "Exome reads" not in page.inner_text("#results")
    page.fill("#q", "")
    page.wait_for_function("() => document.querySelector('#total').innerText.startsWith('5 datasets')")
    page.click("a.facet[data-facet='tag']:text-is('genomics')")
    page.wait_for_function("() => document.querySelector('#total').innerText.startsWith('2 datasets')")
    body = page.inner_text("#results")
    assert "Exome reads, run 7" in body
    assert "Autzen" not in body
    page.goto(served.url + "/cockpit/datasets")
    shot(page, served, "datasets", "Datasets", "Exome reads, run 7", "Autzen stadium lidar", "genomics")


@pytest.mark.parametrize("which", ["reads", "terrain", "ions"])
def test_dataset_page_and_its_preview_load(alice: Any, served: Served, which: str) -> None:
    page = alice
    page.goto(f"{served.url}/cockpit/datasets/{served.ids[which]}")
    page.wait_for_function("() => document.querySelector('#preview').complete", timeout=60_000)
    assert page.evaluate("document.querySelector('#preview').naturalWidth") > 0
    assert page.evaluate("document.querySelector('#preview').naturalHeight") > 0
    assert page.inner_text("#facts")
    if which == "reads":
        assert page.locator("#lineage svg").count() == 1
        assert "call" in page.inner_text("#lineage")
        assert page.locator("#lineage g.dataset").count() == 2  # reads -> call -> calls, the root drawn once
        assert page.locator("#lineage g.job").count() == 1
        shot(page, served, "dataset", "Exome reads, run 7", "Extracted metadata", "Lineage", "Versions", full_page=True)


def test_approve_an_access_request(alice: Any, served: Served) -> None:
    page = alice
    page.goto(served.url + "/cockpit/access")
    row = page.locator(f"tr[data-request='{served.request_id}']")
    assert "Train a variant-calling model" in row.inner_text()
    assert "pending" in row.inner_text()
    shot(page, served, "access", "Access requests", "Train a variant-calling model", "Approve", "Reject")
    row.locator("input[name=reason]").fill("ok for the model")
    row.locator("button.approve").click()
    page.wait_for_url("**/cockpit/access?msg=*")
    assert "approved" in page.inner_text("#message")
    assert "approved" in page.locator(f"tr[data-request='{served.request_id}']").inner_text()
    (decided,) = [
        r for r in served.catalog.access_requests(dataset_id=served.ids["reads"]) if r.id == served.request_id
    ]
    assert decided.status == "approved"
    assert decided.decided_by == "alice"
    assert decided.policy_id


def test_html_in_description_and_tags_stays_text(alice: Any, served: Served) -> None:
    page = alice
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(f"{served.url}/cockpit/datasets/{served.ids['xss']}")
    assert page.inner_text("#description") == XSS_DESC  # shown as the text it is
    assert XSS_TAG in page.inner_text("#tags")
    page.goto(served.url + "/cockpit/datasets?q=untrusted")
    assert "<script>window.__xss=1</script>" in page.inner_text("#results")
    page.fill("#q", "Look")
    page.wait_for_function("() => document.querySelector('#total').innerText.startsWith('1 dataset')")
    page.wait_for_timeout(300)  # an injected onerror would have fired by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("#results script, #main script").count() == 0


def test_jobs_and_streams_pages(alice: Any, served: Served) -> None:
    page = alice
    page.goto(served.url + "/cockpit/jobs/call-variants-7")
    for img in ("#timeline", "#histogram"):
        page.wait_for_function(f"() => document.querySelector('{img}').complete", timeout=60_000)
        assert page.evaluate(f"document.querySelector('{img}').naturalWidth") > 0
    shot(page, served, "job", "call-variants-7", "Timeline and durations", "Telemetry")
    page.goto(served.url + "/cockpit/streams")
    first = page.inner_text("#sampled")
    page.wait_for_function(f"() => document.querySelector('#sampled').innerText !== {first!r}", timeout=10_000)
    assert "endoscope" in page.inner_text("#streams-live")
    assert "annotators" in page.inner_text("#streams-live")
    shot(page, served, "streams", "Scope surgery", "endoscope", "Reader groups", "annotators")
