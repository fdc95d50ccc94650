"""Code measurement: what changes it (code, module files, package versions) and what does not (a pickle trip)."""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import platform
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
from keyrelease_support import allowed_task, other_task

import xtremehub
from xtremehub.errors import KeyReleaseDenied
from xtremehub.security.attest import Evidence, SoftwareAttester, SoftwareVerifier, measure, measurement_parts


def test_the_same_code_measures_the_same_and_other_code_differs() -> None:
    assert measure(allowed_task) == measure(allowed_task)
    assert measure(allowed_task) != measure(other_task)
    assert measure(allowed_task).startswith("sha256:")
    assert len(measure(allowed_task)) == len("sha256:") + 64


def test_a_constant_or_a_nested_function_changes_the_measurement() -> None:
    def make(k: int) -> object:
        def f(x: int) -> int:
            return x + k

        return f

    def g(x: int) -> int:
        return x + 1

    def h(x: int) -> int:
        return x + 2

    def outer_a() -> object:
        return lambda: 1

    def outer_b() -> object:
        return lambda: 2

    assert measure(g) != measure(h)
    assert measure(outer_a) != measure(outer_b)  # a nested code object's constant
    assert measure(make(1)) == measure(make(2))  # closure values are data, not code  # type: ignore[arg-type]


def test_a_pickled_copy_measures_the_same() -> None:
    def task(x: int) -> int:
        return x * 7

    copy = pickle.loads(cloudpickle.dumps(task))  # by value, as workers receive nested functions
    assert copy is not task
    assert measure(copy) == measure(task)


def test_the_module_file_is_part_of_the_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "measured_mod_xhub.py"
    module.write_text("def run(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("measured_mod_xhub")
    try:
        before = measure(mod.run)
        assert measurement_parts(mod.run)["files"] == {
            "measured_mod_xhub.py": measurement_parts(mod.run)["files"]["measured_mod_xhub.py"]
        }
        module.write_text("def run(x):\n    return x\n\nSECRET_BACKDOOR = True\n")  # same function, edited module
        assert measure(mod.run) != before
        module.unlink()
        assert measurement_parts(mod.run)["files"]["measured_mod_xhub.py"] == "unreadable"
    finally:
        sys.modules.pop("measured_mod_xhub", None)


def test_package_versions_and_the_interpreter_are_part_of_the_measurement() -> None:
    parts = measurement_parts(allowed_task)
    assert parts["interpreter"] == f"{sys.implementation.name}-{platform.python_version()}"
    assert set(parts["packages"]) == {"xtremehub", "cryptography", "cloudpickle"}
    assert parts["function"] == "keyrelease_support:allowed_task"
    with_numpy = measurement_parts(allowed_task, packages=["numpy"])
    assert with_numpy["packages"] == {"numpy": importlib.metadata.version("numpy")}
    assert measure(allowed_task, packages=["numpy"]) != measure(allowed_task)
    assert measurement_parts(allowed_task, packages=["no-such-dist-xhub"])["packages"] == {
        "no-such-dist-xhub": "absent"
    }


def test_wrapped_functions_methods_and_callables_measure_their_code() -> None:
    @functools.wraps(allowed_task)
    def wrapper(x: int) -> int:
        return allowed_task(x)

    class Task:
        def __call__(self, x: int) -> int:
            return x

        def method(self, x: int) -> int:
            return x

    assert measure(wrapper) == measure(allowed_task)
    assert measure(Task()) == measure(Task.__call__)
    assert measure(Task().method) == measure(Task.method)
    with pytest.raises(KeyReleaseDenied, match="cannot measure 'builtin_function_or_method'"):
        measure(len)


def test_the_software_attester_binds_the_request_and_travels_without_its_cache() -> None:
    attester = SoftwareAttester(allowed_task)
    evidence = attester.attest(b"\x01" * 32)
    assert evidence == Evidence("software", measure(allowed_task), "01" * 32)
    assert SoftwareVerifier().verify(evidence, b"\x01" * 32) == measure(allowed_task)
    with pytest.raises(KeyReleaseDenied, match="not bound to this request"):
        SoftwareVerifier().verify(evidence, b"\x02" * 32)
    copy = pickle.loads(pickle.dumps(attester))
    assert copy._cache == {}
    assert copy.measurement() == attester.measurement()
    assert Evidence.from_dict(evidence.to_dict()) == evidence
    with pytest.raises(KeyReleaseDenied, match="lacks the field 'measurement'"):
        Evidence.from_dict({"kind": "software", "report_data": ""})


def test_set_constants_measure_the_same_under_any_hash_seed(tmp_path: Path) -> None:
    module = tmp_path / "seeded_mod_xhub.py"
    module.write_text('def pick(x):\n    return x in {"alpha", "beta", "gamma", "delta", "epsilon"}\n')
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import seeded_mod_xhub as m; "
        "from xtremehub.security.attest import measure; print(measure(m.pick))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(xtremehub.__file__).resolve().parents[1])}
    seen = {
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            env={**env, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in (1, 2, 3, 4)
    }
    assert len(seen) == 1
    assert next(iter(seen)).startswith("sha256:")
