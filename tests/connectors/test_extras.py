"""Optional extras and public import paths: a missing extra is named, every class has one short path."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest

from xtremehub.connectors.registry import FORMATS, known_formats

FAMILIES = ["genomics", "imaging", "pointcloud", "raster", "text"]
GEO = ("laspy", "lazrs", "tifffile", "imagecodecs")

# Run in a fresh interpreter whose import system refuses the geo extra's packages, as in an
# environment where `pip install xtremehub` ran without `[geo]`.
_BLOCKER = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""


def _without_geo(code: str) -> subprocess.CompletedProcess[str]:
    script = _BLOCKER.format(blocked=set(GEO)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("family", ["pointcloud", "raster"])
def test_importing_a_geo_family_without_the_extra_names_the_extra(family: str) -> None:
    done = _without_geo(
        f"""
        try:
            import xtremehub.connectors.{family}
        except ImportError as exc:
            print(type(exc).__name__, exc.name, str(exc), sep="|")
        else:
            print("imported")
        """
    )
    assert done.returncode == 0, done.stderr
    kind, name, message = done.stdout.strip().split("|")
    assert kind == "MissingDependency"  # never a bare ModuleNotFoundError
    assert name in GEO
    assert "pip install 'xtremehub[geo]'" in message


@pytest.mark.parametrize("fmt", ["cog", "las", "copc"])
def test_a_geo_format_by_name_without_the_extra_says_how_to_install_it(fmt: str) -> None:
    done = _without_geo(
        f"""
        from xtremehub.connectors import CloudObject, known_formats
        from xtremehub.errors import MissingDependency
        assert {fmt!r} in known_formats()  # listed even when it cannot load
        try:
            CloudObject({fmt!r}, "mem://bucket/object")
        except MissingDependency as exc:
            print(str(exc))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"format {fmt!r} needs ")
    assert "pip install 'xtremehub[geo]'" in done.stdout


def test_the_other_families_and_the_cli_import_without_the_geo_extra() -> None:
    done = _without_geo(
        """
        import xtremehub.connectors.genomics, xtremehub.connectors.imaging, xtremehub.connectors.text
        import xtremehub.cli, xtremehub.demo
        import sys
        print(sorted(m for m in {blocked!r} if m in sys.modules))
        """.replace("{blocked!r}", repr(set(GEO)))
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_registry_entries_use_the_short_family_path_and_geo_formats_carry_the_hint() -> None:
    entries = FORMATS._entries  # the built-in table as written
    for name in ("fastq_gzip", "fasta", "vcf", "text", "csv", "cog", "imzml", "las", "copc"):
        target = entries[name].target
        path = target if isinstance(target, str) else f"{target.__module__}:{target.__name__}"
        module, _, attr = path.partition(":")
        if isinstance(target, str):
            assert module.rsplit(".", 1)[0] == "xtremehub.connectors", path
            assert module.rsplit(".", 1)[1] in FAMILIES, path
            assert attr in importlib.import_module(module).__all__, path
    for name in ("cog", "las", "copc"):
        assert entries[name].install_hint == "pip install 'xtremehub[geo]'"
    assert set(known_formats()) >= {"cog", "las", "copc", "fastq_gzip", "imzml"}


def test_every_public_class_has_one_family_path() -> None:
    """Each class a family exports is exported by no other family, and the top level keeps only its own."""
    owner: dict[object, str] = {}
    for family in FAMILIES:
        module = importlib.import_module(f"xtremehub.connectors.{family}")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                assert owner.setdefault(obj, family) == family, f"{name} exported by {owner[obj]} and {family}"
    top = importlib.import_module("xtremehub.connectors")
    assert not {getattr(top, n) for n in top.__all__} & set(owner)
    assert len(owner) > 20
