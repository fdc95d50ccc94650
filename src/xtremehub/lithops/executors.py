"""Lithops's executor classes, built on :class:`xtremehub.compute.FunctionExecutor`.

They take Lithops's constructor arguments (``config=``, ``config_file=``,
``backend=``, ``storage=``, ``max_workers=``, ...). The compute backend is
XtremeHub's: Lithops's ``localhost`` backend maps to XtremeHub's ``local``
processes; another XtremeHub backend name (``ray``, ``dask``, ``lithops``) may be
given as ``backend=``. The storage section of the config is mapped to XtremeHub
settings, so ``storage`` parameters, cloud objects and ``<backend>://bucket/key``
object URLs reach the store the config names.

Example:
    >>> from xtremehub import lithops
    >>> fexec = lithops.FunctionExecutor(config={"lithops": {"backend": "localhost"}}, max_workers=1)
    >>> fexec.call_async(sum, ([1, 2, 3],))
    <ResponseFuture ...>
    >>> fexec.get_result()
    6
    >>> fexec.close()
"""

from __future__ import annotations

from typing import Any

from xtremehub.compute.backends import known_backends
from xtremehub.compute.executor import FunctionExecutor as _XHubExecutor
from xtremehub.config import Settings
from xtremehub.lithops.config import default_config, extract_storage_config, settings_for
from xtremehub.lithops.storage import Storage

__all__ = ["FunctionExecutor", "LocalhostExecutor", "ServerlessExecutor", "StandaloneExecutor"]

#: Lithops compute backends that run on this machine: XtremeHub's local processes.
_LOCAL_BACKENDS = frozenset({"localhost", "localhost_v2", "local"})


class FunctionExecutor(_XHubExecutor):
    """Lithops's ``FunctionExecutor(mode, config, config_file, backend, storage, ...)`` on XtremeHub.

    ``max_workers`` (or the config's ``<backend>.max_workers`` / ``lithops.max_workers``)
    sizes the worker pool; ``settings``, ``progress`` and other keyword arguments are
    XtremeHub's (see :class:`xtremehub.compute.FunctionExecutor`).
    """

    def __init__(
        self,
        mode: str | None = None,
        config: dict[str, Any] | None = None,
        config_file: str | None = None,
        backend: str | None = None,
        storage: str | None = None,
        monitoring: str | None = None,
        log_level: str | bool | None = False,
        *,
        max_workers: int | None = None,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        overwrite: dict[str, dict[str, Any]] = {"lithops": {}}
        if backend is not None:
            overwrite["lithops"]["backend"] = backend
        if storage is not None:
            overwrite["lithops"]["storage"] = storage
        self._lithops_config = default_config(config_data=config, config_overwrite=overwrite, config_file=config_file)
        lithops_cfg = self._lithops_config["lithops"]
        name = lithops_cfg["backend"]
        if max_workers is None:
            max_workers = self._lithops_config.get(name, {}).get("max_workers") or lithops_cfg.get("max_workers")
        xhub_backend = "local" if name in _LOCAL_BACKENDS or mode == "localhost" else name
        if xhub_backend not in known_backends():
            from xtremehub.errors import ConfigError

            raise ConfigError(
                f"Lithops backend {name!r} has no XtremeHub counterpart; use localhost or one of {known_backends()}"
            )
        storage_config = extract_storage_config(self._lithops_config)
        settings = settings_for(storage_config, settings)
        super().__init__(xhub_backend, max_workers=max_workers, settings=settings, **kwargs)
        self._storage = Storage(storage_config=storage_config, settings=self.settings, executor_id=self.executor_id)

    @property
    def config(self) -> dict[str, Any]:
        """The Lithops config this executor was made from, with Lithops's defaults."""
        return self._lithops_config

    def _object_url(self, url: str) -> str:
        """``<storage backend>://bucket/key`` (as Lithops users write them) to XtremeHub URLs."""
        scheme, sep, rest = url.partition("://")
        storage: Storage = self._storage
        if sep and scheme == storage.backend and scheme not in ("s3", "mem", "file", "http", "https"):
            bucket, _, key = rest.partition("/")
            return storage.url(bucket, key)
        return url


class LocalhostExecutor(FunctionExecutor):
    """Lithops's ``LocalhostExecutor``: a :class:`FunctionExecutor` on local processes."""

    def __init__(self, config: dict[str, Any] | None = None, config_file: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("backend", "localhost")
        super().__init__(mode="localhost", config=config, config_file=config_file, **kwargs)


class ServerlessExecutor(FunctionExecutor):
    """Lithops's ``ServerlessExecutor``: the backend must be one XtremeHub knows (e.g. ``lithops``)."""

    def __init__(self, config: dict[str, Any] | None = None, config_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(mode="serverless", config=config, config_file=config_file, **kwargs)


class StandaloneExecutor(FunctionExecutor):
    """Lithops's ``StandaloneExecutor``: the backend must be one XtremeHub knows (e.g. ``ray``)."""

    def __init__(self, config: dict[str, Any] | None = None, config_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(mode="standalone", config=config, config_file=config_file, **kwargs)
