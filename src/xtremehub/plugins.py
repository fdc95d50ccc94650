"""One mechanism for every plugin kind (storage schemes, compute backends, formats).

A :class:`Registry` maps a name to a dotted path ``"package.module:attr"`` (imported
on first use, so importing XtremeHub stays light) or to the object itself, with an
install hint for optional dependencies. Third parties add entries with
:meth:`Registry.register` or through the registry's entry-point group.

Example:
    >>> reg = Registry("greeting", "xtremehub.test-greetings", {"hello": "builtins:str"})
    >>> reg.load("hello")("x")
    'x'
    >>> reg.load("bye")
    Traceback (most recent call last):
    ...
    xtremehub.errors.PluginNotFound: unknown greeting 'bye'; valid: hello
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from xtremehub.errors import ConfigError, MissingDependency, PluginNotFound

__all__ = ["Registry", "install_hint", "require_extra"]

T = TypeVar("T")


@dataclass
class _Entry:
    target: Any  # dotted "module:attr" string, or the plugin itself
    install_hint: str = ""


class Registry(Generic[T]):
    """Name → plugin, loaded lazily; refuses to replace an existing name."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str | tuple[str, str]]) -> None:
        self.kind, self.group = kind, group
        self._entries: dict[str, _Entry] = {}
        for name, spec in builtins.items():
            target, hint = (spec, "") if isinstance(spec, str) else spec
            self._entries[name] = _Entry(target, hint)
        self._entry_points_loaded = False

    def register(self, name: str, target: T | str, *, install_hint: str = "") -> None:
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = _Entry(target, install_hint)

    def names(self) -> list[str]:
        if not self._entry_points_loaded:
            self._entry_points_loaded = True
            for ep in entry_points(group=self.group):
                self._entries.setdefault(ep.name, _Entry(ep.value))
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def load(self, name: str) -> T:
        """The plugin called ``name``; :class:`PluginNotFound` lists the known ones."""
        names = self.names()
        entry = self._entries.get(name)
        if entry is None:
            raise PluginNotFound(f"unknown {self.kind} {name!r}; valid: {', '.join(names)}")
        if isinstance(entry.target, str):
            module_name, _, attr = entry.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                hint = entry.install_hint or f"install the package providing {module_name}"
                raise MissingDependency(f"{self.kind} {name!r} needs {exc.name}: {hint}", name=exc.name) from exc
            entry.target = getattr(module, attr)
        plugin: T = entry.target
        return plugin


def install_hint(extra: str) -> str:
    """How to install one of XtremeHub's extras.

    Example:
        >>> install_hint("geo")
        "pip install 'xtremehub[geo]'"
    """
    return f"pip install 'xtremehub[{extra}]'"


def require_extra(feature: str, extra: str, *modules: str) -> None:
    """Import ``modules`` or raise :class:`MissingDependency` naming the extra that installs them.

    Example:
        >>> require_extra("the point-cloud connectors", "geo", "json")
        >>> require_extra("the point-cloud connectors", "geo", "no_such_module_xhub")
        Traceback (most recent call last):
        ...
        xtremehub.errors.MissingDependency: the point-cloud connectors: no_such_module_xhub is not installed; \
pip install 'xtremehub[geo]'
    """
    for module in modules:
        try:
            with warnings.catch_warnings():
                # some extras (cpyMSpec, cpyImagingMSpec) leave a header file open when imported
                warnings.simplefilter("ignore", ResourceWarning)
                importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependency(
                f"{feature}: {module} is not installed; {install_hint(extra)}", name=module
            ) from exc
