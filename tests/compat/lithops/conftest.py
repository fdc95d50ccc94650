"""Runs Lithops 3.8.0's own tests (vendored unmodified from lithops/tests) against ``xtremehub.lithops``.

Adapted from Lithops's ``lithops/tests/conftest.py`` (Apache-2.0, see LICENSE-lithops.txt):

- the test files' ``import lithops`` / ``from lithops.x import ...`` statements resolve to
  ``xtremehub.lithops`` (``lithops.tests.functions`` and ``lithops.tests.conftest`` to the
  files here) for these files only: each vendored module gets its own ``__import__``, so the
  real Lithops package, which the Lithops *backend* tests use in the same session, is untouched;
- ``pytest.lithops_config`` is a localhost config whose storage lives in a session directory
  (Lithops's conftest reads ``--config``/``--backend``/... command-line options instead);
- the word-count data set the tests download from S3 over HTTPS is replaced by local files
  with the same word counts, served over HTTP on 127.0.0.1 (the URLs in the test module are
  pointed there before the tests run).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import os
import random
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

TESTS_PREFIX = "__lithops.test"  # as in Lithops's conftest (the tests import it from there)

HERE = Path(__file__).resolve().parent
VENDORED = ("test_call_async", "test_map", "test_map_reduce", "test_retries", "test_future", "test_storage")
#: ``functions.py`` is imported by the tests as ``lithops.tests.functions``, never collected itself.
collect_ignore = ["functions.py"]

#: The vocabularies the tests download (UCI "Bag of Words" data set): their word counts.
WORD_COUNTS = {
    "vocab.enron.txt": 28_102,
    "vocab.kos.txt": 6_906,
    "vocab.nips.txt": 12_419,
    "vocab.nytimes.txt": 102_660,
    "vocab.pubmed.txt": 141_043,
}

# -- the import redirection -----------------------------------------------------------------------
_real_import = builtins.__import__
_vendored_modules: dict[str, types.ModuleType] = {}


def _lithops_module(name: str) -> types.ModuleType:
    """The module a vendored file gets for ``name`` (``lithops`` or ``lithops.<sub>``)."""
    if name == "lithops.tests.conftest":
        return sys.modules[__name__]
    if name == "lithops.tests.functions":
        return _load_vendored("lithops_compat_functions", HERE / "functions.py")
    if name == "lithops.tests":
        package = types.ModuleType("lithops_compat_tests")
        package.conftest = sys.modules[__name__]  # type: ignore[attr-defined]
        package.functions = _lithops_module("lithops.tests.functions")  # type: ignore[attr-defined]
        return package
    return importlib.import_module("xtremehub." + name)


def _compat_import(
    name: str,
    globals: dict[str, Any] | None = None,
    locals: dict[str, Any] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> Any:
    if level == 0 and (name == "lithops" or name.startswith("lithops.")):
        module = _lithops_module(name)
        return module if fromlist else _lithops_module("lithops")
    return _real_import(name, globals, locals, fromlist or (), level)


_COMPAT_BUILTINS = dict(vars(builtins), __import__=_compat_import)


class _CompatLoader(importlib.machinery.SourceFileLoader):
    """Executes a vendored file with ``__import__`` redirecting ``lithops`` to ``xtremehub.lithops``."""

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = _COMPAT_BUILTINS
        super().exec_module(module)


def _load_vendored(name: str, path: Path) -> types.ModuleType:
    if name not in _vendored_modules:
        loader = _CompatLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # workers unpickle its functions by reference
        _vendored_modules[name] = module
        loader.exec_module(module)
    return _vendored_modules[name]


class _VendoredFinder(importlib.abc.MetaPathFinder):
    """Gives pytest the vendored test modules (imported by their base names) with the redirection."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in VENDORED:
            return None
        found = importlib.machinery.PathFinder.find_spec(fullname, path)
        if found is None or found.origin is None or Path(found.origin).resolve().parent != HERE:
            return None  # a module of the same name elsewhere is none of ours
        file = HERE / f"{fullname}.py"
        return importlib.util.spec_from_file_location(fullname, file, loader=_CompatLoader(fullname, str(file)))


if not any(isinstance(f, _VendoredFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _VendoredFinder())


# -- fixtures (Lithops's, adapted) -----------------------------------------------------------------
@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    """Gives every test the environment back as it found it (as Lithops's conftest does)."""
    saved = os.environ.copy()
    yield
    os.environ.clear()
    os.environ.update(saved)


def _write_vocabularies(directory: Path) -> None:
    """Files with the word counts of the UCI vocabularies: one pseudo-word per line."""
    rng = random.Random(21)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for name, count in WORD_COUNTS.items():
        words = ("".join(rng.choices(letters, k=rng.randint(3, 12))) for _ in range(count))
        (directory / name).write_text("\n".join(words) + "\n")


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` support (the standard handler ignores ranges)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().send_head()
        first, _, last = rng.removeprefix("bytes=").partition("-")
        size = path.stat().st_size
        start, end = int(first), min(size - 1, int(last)) if last else size - 1
        if start >= size:
            self.send_error(416)
            return None
        fh = path.open("rb")
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return _Bounded(fh, end - start + 1)


class _Bounded:
    def __init__(self, fh: Any, left: int) -> None:
        self.fh, self.left = fh, left

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data: bytes = self.fh.read(n)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.fh.close()


@pytest.fixture(scope="session")
def vocabulary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The replacement data set, served on 127.0.0.1; yields the base URL."""
    directory = tmp_path_factory.mktemp("lithops-vocab")
    _write_vocabularies(directory)

    def handler(*args: Any) -> _RangeHandler:
        return _RangeHandler(*args, directory=str(directory))

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session", autouse=True)
def setup_global(tmp_path_factory: pytest.TempPathFactory, vocabulary_server: str) -> None:
    """``pytest.lithops_config``: localhost compute and storage, the storage in a session directory."""
    root = tmp_path_factory.mktemp("lithops-storage")
    from xtremehub.lithops.config import default_config

    pytest.lithops_config = default_config(  # type: ignore[attr-defined]
        config_data={
            "lithops": {"backend": "localhost", "storage": "localhost", "log_level": "DEBUG"},
            "localhost": {"storage_bucket": "xhub-lithops-tests", "storage_root": str(root), "max_workers": 2},
        }
    )
    module = sys.modules.get("test_map_reduce")
    if module is not None and module.__file__ == str(HERE / "test_map_reduce.py"):
        urls = [vocabulary_server + url.rsplit("/", 1)[1] for url in module.TEST_FILES_URLS]
        module.TEST_FILES_URLS[:] = urls  # the same list object the tests read


#: Tests of Lithops internals XtremeHub does not have, by class: why they cannot pass (docs/lithops.md).
NOT_APPLICABLE = {
    "test_future.py::TestResponseFutureState": (
        "Lithops-internal future: built from a job description and a storage config, advanced through "
        "Lithops's invocation states (_set_invoked/_set_ready/_set_mapreduce) and activation logs; "
        "XtremeHub's futures are made and settled by the executor"
    ),
    "test_future.py::TestResponseFutureStatusAndResult": (
        "Lithops-internal result protocol: polling call-status records and outputs through InternalStorage; "
        "XtremeHub's results travel back over the backend's channel, nothing is polled"
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for prefix, reason in NOT_APPLICABLE.items():
            if f"compat/lithops/{prefix}::" in item.nodeid:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
