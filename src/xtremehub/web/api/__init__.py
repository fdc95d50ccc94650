"""The API's routers, one module per concept, all mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["routers"]


def routers() -> list[APIRouter]:
    """Every router of the API, in the order the OpenAPI document lists them."""
    from xtremehub.web.api import datasets, health

    found = [health.router, datasets.router]
    for name in ("lineage", "access", "jobs", "streams", "objects"):
        try:
            module = __import__(f"xtremehub.web.api.{name}", fromlist=["router"])
        except ModuleNotFoundError as exc:
            if exc.name != f"xtremehub.web.api.{name}":
                raise
            continue
        found.append(module.router)
    return found
