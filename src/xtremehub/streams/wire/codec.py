"""Payload encoding: MessagePack with extension types for tuples and the contracts' dataclasses.

The contracts' arguments and results are plain data (str, int, float, bool, None, bytes,
lists, dicts, tuples and frozen dataclasses). Tuples travel as extension type 1 so they come
back as tuples, and each frozen dataclass of a registered module travels as extension type 2
holding ``[class name, field values...]``, rebuilt through its constructor (so its
validation runs on the receiving side too). Only registered classes can be built: a payload
cannot name an arbitrary class.

Errors travel as ``{"error": class name, "message": text}`` and are re-raised as the same
class from :mod:`xtremehub.errors` (or as a few builtins) by :func:`decode_error`.

Example:
    >>> from xtremehub.streams.segmentstore.contract import AppendResult
    >>> codec = WireCodec.default()
    >>> codec.decode(codec.encode([AppendResult("s", 0, 3), (1, 2), b"x"]))
    [AppendResult(segment='s', offset=0, length=3, duplicate=False), (1, 2), b'x']
    >>> err = decode_error(codec.decode(codec.encode(encode_error(KeyError("k")))))
    >>> type(err).__name__
    'StreamError'
"""

from __future__ import annotations

import dataclasses
import threading
import types
from collections.abc import Iterable
from typing import Any, ClassVar

import msgpack

from xtremehub import errors
from xtremehub.errors import ProtocolError, StreamError, XHubError

__all__ = ["WireCodec", "decode_error", "encode_error"]

_EXT_TUPLE = 1
#: A thread's packer before its first use.
_FRESH = object()
#: Frames up to this size leave the thread's packer for the next frame (see ``WireCodec.encode``).
_KEEP_PACKER_BELOW = 1 << 20
_EXT_DATACLASS = 2

# Builtins a contract method may raise on bad arguments: re-raised as themselves on the client.
_BUILTIN_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "TypeError": TypeError,
    "TimeoutError": TimeoutError,
    "NotImplementedError": NotImplementedError,
}


class WireCodec:
    """MessagePack encoder/decoder that knows the dataclasses of the given modules."""

    _default: ClassVar[WireCodec | None] = None

    def __init__(self, modules: Iterable[types.ModuleType]) -> None:
        self._classes: dict[str, type[Any]] = {}
        self._local = threading.local()  # each thread's reusable packer (see encode)
        for module in modules:
            for name in getattr(module, "__all__", ()):
                obj = getattr(module, name)
                if isinstance(obj, type) and dataclasses.is_dataclass(obj):
                    known = self._classes.setdefault(obj.__name__, obj)
                    if known is not obj:
                        raise ValueError(f"two wire dataclasses named {obj.__name__}: {known} and {obj}")

    @classmethod
    def default(cls) -> WireCodec:
        """The codec for the segment-store and controller contracts (built once)."""
        if cls._default is None:
            from xtremehub.streams.controller import model
            from xtremehub.streams.segmentstore import contract

            cls._default = cls([contract, model])
        return cls._default

    @property
    def classes(self) -> frozenset[str]:
        """Names of the dataclasses this codec can carry."""
        return frozenset(self._classes)

    def encode(self, value: object) -> bytes:
        """Pack ``value``; ``TypeError`` for values outside plain data and known dataclasses.

        Each thread reuses one ``msgpack.Packer`` (``packb`` makes one per call, which costs as
        much as packing a small frame); a nested call (from the default hook, for a tuple or a
        dataclass) packs with its own, and a failed pack or a frame over 1 MiB drops the thread's packer.
        """
        local = self._local
        packer: Any = getattr(local, "packer", _FRESH)
        if packer is None:  # the thread's packer is busy with the value holding this one
            return msgpack.packb(value, default=self._default_hook, strict_types=True, use_bin_type=True)  # type: ignore[no-any-return]
        if packer is _FRESH:
            packer = msgpack.Packer(default=self._default_hook, strict_types=True, use_bin_type=True)
        local.packer = None
        try:
            data: bytes = packer.pack(value)
        except BaseException:
            del local.packer
            raise
        # A packer keeps the largest buffer it ever grew (a 32 MiB frame: 64 MiB per thread for
        # good): after a large frame the thread starts again with a fresh one.
        local.packer = packer if len(data) <= _KEEP_PACKER_BELOW else _FRESH
        return data

    def decode(self, payload: bytes) -> Any:
        """Unpack a payload; ``ProtocolError`` when it is not valid for this codec."""
        try:
            return msgpack.unpackb(
                payload, ext_hook=self._ext_hook, raw=False, strict_map_key=False, use_list=True, max_bin_len=1 << 30
            )
        except XHubError:  # ProtocolError, or a dataclass refusing its fields (InvalidStreamArgument)
            raise
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise ProtocolError(f"bad payload ({len(payload)} bytes): {exc}") from exc

    def _default_hook(self, obj: object) -> object:
        if type(obj) is tuple:
            return msgpack.ExtType(_EXT_TUPLE, self.encode(list(obj)))
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            name = type(obj).__name__
            if self._classes.get(name) is not type(obj):
                raise TypeError(f"{name} is not a wire dataclass")
            values = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
            return msgpack.ExtType(_EXT_DATACLASS, self.encode([name, *values]))
        if isinstance(obj, int):  # IntEnum, bool subclasses: send the plain value
            return int(obj)
        if isinstance(obj, str):  # StrEnum
            return str(obj)
        raise TypeError(f"cannot send a {type(obj).__name__} over the wire")

    def _ext_hook(self, code: int, data: bytes) -> object:
        items = self.decode(data)
        if not isinstance(items, list):
            raise ProtocolError(f"extension {code} does not hold an array")
        if code == _EXT_TUPLE:
            return tuple(items)
        if code == _EXT_DATACLASS:
            if not items or not isinstance(items[0], str):
                raise ProtocolError("dataclass extension without a class name")
            cls = self._classes.get(items[0])
            if cls is None:
                raise ProtocolError(f"unknown dataclass {items[0]!r} on the wire")
            try:
                return cls(*items[1:])
            except TypeError as exc:
                raise ProtocolError(f"bad fields for {items[0]}: {exc}") from exc
        raise ProtocolError(f"unknown extension type {code}")


def encode_error(exc: BaseException) -> dict[str, str]:
    """The wire form of an error: its class name and message."""
    message = str(exc.args[0]) if isinstance(exc, StreamError) and len(exc.args) == 1 else str(exc)
    return {"error": type(exc).__name__, "message": message}


def decode_error(payload: object) -> Exception:
    """Rebuild the error sent by :func:`encode_error` as the same class when it is ours.

    Errors of :mod:`xtremehub.errors` whose constructor takes one message come back as the
    same class; a few builtins come back as themselves; anything else becomes a
    :class:`~xtremehub.errors.StreamError` naming the remote class.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
        return ProtocolError(f"malformed error frame: {payload!r:.200}")
    name, message = payload["error"], str(payload.get("message", ""))
    cls = getattr(errors, name, None) if name in errors.__all__ else None
    if isinstance(cls, type) and issubclass(cls, XHubError):
        try:
            return cls(message)
        except TypeError:  # a constructor with more fields (StorageError(url, detail))
            err = cls.__new__(cls)
            Exception.__init__(err, message)
            return err
    if name in _BUILTIN_ERRORS:
        return _BUILTIN_ERRORS[name](message)
    return StreamError(f"server error {name}: {message}")
