"""Input checks of the catalog: lengths, characters and JSON shapes, each failure naming its field.

Everything a caller hands the store goes through here before any SQL is built, so a NUL byte,
a 10 MB title or a set of facts that is not JSON is an :class:`~xtremehub.errors.InvalidMetadata`
naming the field, never a database error.

Example:
    >>> text("title", "Run 7 reads", MAX_TITLE)
    'Run 7 reads'
    >>> text("title", "x" * 501, MAX_TITLE)
    Traceback (most recent call last):
    ...
    xtremehub.errors.InvalidMetadata: title: 501 characters, at most 500 allowed
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from xtremehub.errors import InvalidMetadata

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_FACTS_BYTES",
    "MAX_ID",
    "MAX_LIMIT",
    "MAX_PURPOSE",
    "MAX_SEARCH",
    "MAX_SUBJECT",
    "MAX_TAG",
    "MAX_TAGS",
    "MAX_TITLE",
    "MAX_URL",
    "facts_json",
    "subject",
    "tags",
    "text",
]

MAX_TITLE = 500
MAX_DESCRIPTION = 20_000
MAX_URL = 2048
MAX_TAG = 100
MAX_TAGS = 64
MAX_SUBJECT = 256
MAX_ID = 64
MAX_PURPOSE = 500
MAX_SEARCH = 1000
MAX_LIMIT = 1000
MAX_FACTS_BYTES = 1_000_000
MAX_SHORT = 256  # licence, format, source version
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SUBJECT = re.compile(r"[\w.@+:/-]+")


def text(field: str, value: object, limit: int, *, multiline: bool = False) -> str:
    """``value`` as a string of at most ``limit`` characters without control characters."""
    if not isinstance(value, str):
        raise InvalidMetadata(field, f"must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidMetadata(field, f"{len(value)} characters, at most {limit} allowed")
    bad = _CONTROL.search(value) or (None if multiline else re.search(r"[\n\r\t]", value))
    if bad:
        raise InvalidMetadata(field, f"control character {bad.group()!r} at offset {bad.start()}")
    return value


def subject(field: str, value: object) -> str:
    """A user or group subject: 1-256 of letters, digits and ``. @ + : / - _``."""
    value = text(field, value, MAX_SUBJECT)
    if not _SUBJECT.fullmatch(value):
        raise InvalidMetadata(field, f"{value!r} is not a subject (letters, digits and . @ + : / - _)")
    return value


def tags(values: Iterable[object]) -> tuple[str, ...]:
    """Distinct, stripped tags in order, each checked."""
    if isinstance(values, str):
        raise InvalidMetadata("tags", "must be a list of strings, not one string")
    out: list[str] = []
    for i, value in enumerate(values):
        tag = text(f"tags[{i}]", value, MAX_TAG).strip()
        if not tag:
            raise InvalidMetadata(f"tags[{i}]", "must not be empty")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidMetadata("tags", f"{len(out)} tags, at most {MAX_TAGS} allowed")
    return tuple(out)


def facts_json(field: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """``facts`` as a plain JSON object (round-tripped), at most 1 MB."""
    if not isinstance(facts, Mapping):
        raise InvalidMetadata(field, f"must be a JSON object, not {type(facts).__name__}")
    try:
        encoded = json.dumps(facts, allow_nan=False, default=_refuse)
    except (TypeError, ValueError) as exc:
        raise InvalidMetadata(field, f"not JSON: {exc}") from None
    if len(encoded) > MAX_FACTS_BYTES:
        raise InvalidMetadata(field, f"{len(encoded)} bytes of JSON, at most {MAX_FACTS_BYTES} allowed")
    if "\\u0000" in encoded:
        raise InvalidMetadata(field, "NUL characters are not allowed")
    loaded: dict[str, Any] = json.loads(encoded)
    return loaded


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON")
