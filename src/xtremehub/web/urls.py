"""Object URLs from requests: refused before any store sees them when they try to escape.

A ``.`` or ``..`` path segment (also percent-encoded), a NUL or another control character, or
a backslash is refused with :class:`~xtremehub.errors.UnsupportedURL` (HTTP 400): a store may
resolve such a path outside the prefix a policy allows.

Example:
    >>> checked_url("s3://lab/reads.fastq.gz")
    's3://lab/reads.fastq.gz'
    >>> checked_url("/data/lab/../../etc/passwd")
    Traceback (most recent call last):
    ...
    xtremehub.errors.UnsupportedURL: /data/lab/../../etc/passwd: '.' and '..' path segments are refused (path traversal)
"""

from __future__ import annotations

import re
import urllib.parse

from xtremehub.errors import UnsupportedURL

__all__ = ["checked_url"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def checked_url(url: str) -> str:
    """``url`` unchanged when it is safe to hand to a store; :class:`UnsupportedURL` otherwise."""
    if not url:
        raise UnsupportedURL(url, "an empty URL")
    if _CONTROL.search(url):
        raise UnsupportedURL(
            url.encode("unicode_escape").decode()[:300], "control characters and backslashes are refused"
        )
    _, sep, rest = url.partition("://")
    path = rest if sep else url
    for text in (path, urllib.parse.unquote(path)):
        if any(part in (".", "..") for part in text.split("/")):
            raise UnsupportedURL(url[:300], "'.' and '..' path segments are refused (path traversal)")
    return url
