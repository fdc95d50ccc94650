"""Serve the cockpit (and the REST API) on the embedded data until Ctrl-C: ``xhub demo --serve``.

Security is off (the local single user) and the address is loopback only, as the embedded
defaults are; the catalog is the one under the data home (``open_catalog(settings=...)``).

Example::

    serve_cockpit(settings, port=0, echo=print)   # prints http://127.0.0.1:<port>/cockpit/
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable

from xtremehub.config import Settings
from xtremehub.errors import ConfigError

__all__ = ["serve_cockpit"]

log = logging.getLogger(__name__)


def serve_cockpit(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, echo: Callable[[str], object] = print
) -> None:
    """Run uvicorn in this thread until interrupted; ``port`` 0 picks a free one.

    Raises:
        ConfigError: the port is taken (names it, and how to pick another).
    """
    import uvicorn

    from xtremehub.catalog import open_catalog
    from xtremehub.web import WebConfig, create_app

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # before the URL is printed: early clients queue instead of being refused
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot serve the cockpit on {host}:{port} ({exc}); pick another with --port") from None
    config = WebConfig(host=host, port=int(sock.getsockname()[1]))
    catalog = open_catalog(settings=settings)
    try:
        app = create_app(config, catalog=catalog, settings=settings)
        echo(f"cockpit: {config.url}/cockpit/  (REST API {config.url}/api/v1/docs; Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it shut down on
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        echo("cockpit stopped")
    finally:
        catalog.close()
