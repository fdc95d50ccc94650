"""The error tree drawn in ``xtremehub.errors``' docstring is the real hierarchy, complete."""

from __future__ import annotations

import builtins
import re

import xtremehub.errors as errors_module
from xtremehub import errors

_NODE = re.compile(r"^(?P<indent>[ │]*)(?:[├└]── )?(?P<name>[A-Z]\w+)(?:\s+\((?P<builtin>\w+)\))?")


def _drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """``name -> (parent drawn above it, builtin base in parentheses)`` from the module docstring."""
    doc = errors_module.__doc__ or ""
    lines = doc.split("::\n", 1)[1].strip("\n").split("\n\n", 1)[0].splitlines()
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[str] = []  # stack[d] is the latest class drawn at depth d
    for line in lines:
        match = _NODE.match(line[4:])
        assert match, f"not a tree line: {line!r}"
        depth = 0 if not line.strip().startswith(("├", "└", "│")) else len(match["indent"]) // 4 + 1
        name = match["name"]
        assert name not in tree, f"{name} drawn twice"
        del stack[depth:]
        tree[name] = (stack[-1] if stack else None, match["builtin"])
        stack.append(name)
    return tree


def test_the_drawn_tree_lists_exactly_the_public_classes() -> None:
    drawn = _drawn_tree()
    assert set(drawn) == set(errors.__all__)
    defined = {name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, Exception)}
    assert defined == set(errors.__all__), "every error class is public and every public name is an error class"


def test_the_drawn_tree_matches_the_subclass_relations() -> None:
    for name, (parent, builtin) in _drawn_tree().items():
        cls = getattr(errors, name)
        ours = [b for b in cls.__bases__ if issubclass(b, errors.XHubError)]
        others = [b.__name__ for b in cls.__bases__ if not issubclass(b, errors.XHubError) and b is not Exception]
        if parent is None:
            assert cls is errors.XHubError
            continue
        assert [b.__name__ for b in ours] == [parent], f"{name} is drawn under {parent}, derives from {ours}"
        assert others == ([builtin] if builtin else []), f"{name}: drawn ({builtin}), builtin bases {others}"
        if builtin:
            assert issubclass(cls, getattr(builtins, builtin))


def test_the_parser_reads_depth_and_builtins() -> None:
    drawn = _drawn_tree()
    assert drawn["XHubError"] == (None, None)
    assert drawn["BucketNotFound"] == ("ObjectNotFound", None)
    assert drawn["CheckpointTimeout"] == ("CheckpointFailed", "TimeoutError")
    assert drawn["ServerUnavailable"] == ("StreamError", "ConnectionError")
    assert len(drawn) > 40
