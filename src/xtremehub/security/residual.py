"""Which resources of a kind may someone access: a policy set partially evaluated, as a condition.

Listing (a catalog search) cannot ask the policy engine about every match, one decision each.
Instead the engine evaluates the policies once with the principal, action and context known
and the *resource unknown* (Cedar's partial evaluation), and what is left of each policy is
turned into a :data:`Condition` over the resource: its id and its ``owner``, ``kind`` and
``tags`` attributes. A store compiles that condition into its query (SQL ``WHERE``), so that
a listing, its total and its facet counts hold exactly the resources the policies allow.

Only what can be translated exactly is: ``==``/``!=``/``in``/``is``/``has`` on the resource,
``.owner``/``.kind`` compared with strings, ``.tags`` with ``contains``/``containsAll``/
``containsAny``, ``&&``/``||``/``!``/``if-then-else`` and literals. Anything else (``like``,
other attributes, arithmetic, an evaluation error) raises :class:`Untranslatable`, and the
caller decides resource by resource as before. The engine still decides every resource that
is finally shown (defence in depth).

Example:
    >>> residual = {"effect": "forbid", "conditions": [{"kind": "when", "body": {"contains": {
    ...     "left": {".": {"left": {"unknown": [{"Value": "resource"}]}, "attr": "tags"}},
    ...     "right": {"Value": "embargo"}}}}]}
    >>> allowed({"p0": {"effect": "permit", "conditions": []}, "p1": residual}, "XHub::Dataset")
    Not(item=TagIs(tag='embargo'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

__all__ = [
    "AllOf",
    "AnyOf",
    "AttrIs",
    "Condition",
    "Const",
    "IdIn",
    "Not",
    "TagIs",
    "Untranslatable",
    "allowed",
    "conditions_text",
    "evaluate",
]

#: The string attributes a listed resource carries (``tags`` is its set of strings).
STRING_ATTRS = ("owner", "kind")


class Untranslatable(ValueError):
    """A residual policy uses something the condition language cannot say exactly."""


@dataclass(frozen=True)
class Const:
    """Always ``value``."""

    value: bool


@dataclass(frozen=True)
class IdIn:
    """The resource's id is one of ``ids``."""

    ids: frozenset[str]


@dataclass(frozen=True)
class AttrIs:
    """The string attribute ``attr`` (``owner`` or ``kind``) equals ``value``."""

    attr: str
    value: str


@dataclass(frozen=True)
class TagIs:
    """``tag`` is one of the resource's tags."""

    tag: str


@dataclass(frozen=True)
class Not:
    item: Condition


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


Condition = Union[Const, IdIn, AttrIs, TagIs, Not, AllOf, AnyOf]  # noqa: UP007 - a type alias of classes
_CONDITIONS = (Const, IdIn, AttrIs, TagIs, Not, AllOf, AnyOf)


def evaluate(cond: Condition, resource_id: str, attributes: Mapping[str, object]) -> bool:
    """``cond`` for one resource (what a store's compiled condition must agree with).

    Example:
        >>> evaluate(AllOf((AttrIs("owner", "ann"), Not(TagIs("x")))), "ds-1", {"owner": "ann", "tags": ["y"]})
        True
    """
    if isinstance(cond, Const):
        return cond.value
    if isinstance(cond, IdIn):
        return resource_id in cond.ids
    if isinstance(cond, AttrIs):
        return attributes.get(cond.attr) == cond.value
    if isinstance(cond, TagIs):
        tags = attributes.get("tags") or ()
        return cond.tag in tags  # type: ignore[operator]
    if isinstance(cond, Not):
        return not evaluate(cond.item, resource_id, attributes)
    if isinstance(cond, AllOf):
        return all(evaluate(c, resource_id, attributes) for c in cond.items)
    return any(evaluate(c, resource_id, attributes) for c in cond.items)


# -- translation of Cedar residuals (JSON EST) ----------------------------------------------------


@dataclass(frozen=True)
class _Attr:
    name: str


@dataclass(frozen=True)
class _Entity:
    type: str
    id: str


@dataclass(frozen=True)
class _Set:
    items: tuple[object, ...]


_RESOURCE = _Entity("?", "resource (unknown)")


def _bool(value: object) -> Condition:
    if isinstance(value, _CONDITIONS):
        return value
    if isinstance(value, bool):
        return Const(value)
    raise Untranslatable(f"not a boolean: {value!r}")


def _entity(value: object) -> _Entity | None:
    if isinstance(value, dict) and "__entity" in value:
        ent = value["__entity"]
        return _Entity(str(ent["type"]), str(ent["id"]))
    return None


class _Translator:
    def __init__(self, resource_type: str) -> None:
        self.type = resource_type

    def value(self, expr: Mapping[str, object]) -> object:
        """A literal (str, bool, int, entity tuple, tuple of values), the resource, an attribute or a condition."""
        if len(expr) != 1:
            raise Untranslatable(f"unexpected expression {sorted(expr)}")
        (op, arg), = expr.items()  # fmt: skip
        if op == "Value":
            return self.literal(arg)
        if op == "unknown":
            if isinstance(arg, list) and arg and arg[0] == {"Value": "resource"}:
                return _RESOURCE
            raise Untranslatable(f"unknown {arg!r}")
        if op == "Set":
            return _Set(tuple(self.value(e) for e in arg))  # type: ignore[attr-defined]
        a: Mapping[str, Any] = arg  # type: ignore[assignment]
        if op == "&&":
            return AllOf((_bool(self.value(a["left"])), _bool(self.value(a["right"]))))
        if op == "||":
            return AnyOf((_bool(self.value(a["left"])), _bool(self.value(a["right"]))))
        if op == "!":
            return Not(_bool(self.value(a["arg"])))
        if op == "if-then-else":
            c = _bool(self.value(a["if"]))
            return AnyOf((AllOf((c, _bool(self.value(a["then"])))), AllOf((Not(c), _bool(self.value(a["else"]))))))
        if op in ("==", "!="):
            eq = self.equal(self.value(a["left"]), self.value(a["right"]))
            return eq if op == "==" else Not(eq)
        if op == "in":
            return self.member(self.value(a["left"]), self.value(a["right"]))
        if op == "is":
            if self.value(a["left"]) != _RESOURCE:
                raise Untranslatable("'is' on something other than the resource")
            same = Const(a["entity_type"] == self.type)
            return same if "in" not in a else AllOf((same, self.member(_RESOURCE, self.value(a["in"]))))
        if op == "has":
            if self.value(a["left"]) != _RESOURCE:
                raise Untranslatable("'has' on something other than the resource")
            return Const(a["attr"] in (*STRING_ATTRS, "tags"))
        if op == ".":
            if self.value(a["left"]) != _RESOURCE or a["attr"] not in (*STRING_ATTRS, "tags"):
                raise Untranslatable(f"attribute {a['attr']!r}")
            return _Attr(str(a["attr"]))
        if op in ("contains", "containsAll", "containsAny"):
            return self.contains(op, self.value(a["left"]), self.value(a["right"]))
        raise Untranslatable(f"operator {op!r}")

    def literal(self, arg: object) -> object:
        if isinstance(arg, str | bool | int):
            return arg
        ent = _entity(arg)
        if ent is not None:
            return ent
        if isinstance(arg, list):
            return _Set(tuple(self.literal(v) for v in arg))
        raise Untranslatable(f"literal {arg!r}")

    def equal(self, left: object, right: object) -> Condition:
        if _RESOURCE in (left, right):
            other = right if left == _RESOURCE else left
            if other == _RESOURCE:
                return Const(True)
            if isinstance(other, _Entity):  # also the resource itself: never equal to a literal
                return IdIn(frozenset({other.id})) if other.type == self.type else Const(False)
            return Const(False)
        if isinstance(left, _Attr) or isinstance(right, _Attr):
            attr, other = (left, right) if isinstance(left, _Attr) else (right, left)
            assert isinstance(attr, _Attr)
            if isinstance(other, _Attr):
                raise Untranslatable("attribute compared with attribute")
            if attr.name in STRING_ATTRS:
                return AttrIs(attr.name, other) if isinstance(other, str) else Const(False)
            raise Untranslatable("tags compared with ==")
        if isinstance(left, _CONDITIONS) or isinstance(right, _CONDITIONS):
            raise Untranslatable("== between conditions")
        return Const(left == right and type(left) is type(right))

    def member(self, left: object, right: object) -> Condition:
        if left != _RESOURCE:
            raise Untranslatable("'in' on something other than the resource")
        targets = right.items if isinstance(right, _Set) else (right,)
        ids = set()
        for target in targets:
            if not isinstance(target, _Entity):
                raise Untranslatable(f"'in' {target!r}")
            if target.type == self.type:  # a dataset has no parents: 'in' is '=='
                ids.add(target.id)
        return IdIn(frozenset(ids)) if ids else Const(False)

    def contains(self, op: str, left: object, right: object) -> Condition:
        if isinstance(left, _Attr) and left.name == "tags":
            if op == "contains":
                if isinstance(right, str):
                    return TagIs(right)
                if isinstance(right, int | bool | _Entity | _Set):
                    return Const(False)  # a literal that is no string is never among the tags
                raise Untranslatable(f"contains with {right!r}")  # e.g. another attribute
            if not isinstance(right, _Set) or not all(isinstance(v, str) for v in right.items):
                raise Untranslatable(f"{op} with {right!r}")
            tags = tuple(TagIs(str(v)) for v in right.items)
            return AllOf(tags) if op == "containsAll" else AnyOf(tags)
        if op == "contains" and right == _RESOURCE and isinstance(left, _Set):
            if any(isinstance(v, _Attr) for v in left.items):
                raise Untranslatable(f"contains over {left!r}")
            if not all(isinstance(v, _Entity) for v in left.items):
                return Const(False)
            return self.member(_RESOURCE, left)
        raise Untranslatable(f"{op} on {left!r}")


def _policy_condition(policy: Mapping[str, Any], translator: _Translator) -> Condition:
    for scope in ("principal", "action", "resource"):
        if policy.get(scope, {"op": "All"}).get("op") != "All":
            raise Untranslatable(f"residual {scope} scope {policy[scope]!r}")
    parts: list[Condition] = []
    for clause in policy.get("conditions", ()):
        body = _bool(translator.value(clause["body"]))
        parts.append(body if clause["kind"] == "when" else Not(body))
    return AllOf(tuple(parts)) if parts else Const(True)


def allowed(residuals: Mapping[str, Mapping[str, Any]], resource_type: str) -> Condition:
    """The condition under which some permit and no forbid of ``residuals`` holds (deny by default).

    Raises:
        Untranslatable: some residual cannot be said exactly as a :data:`Condition`.
    """
    translator = _Translator(resource_type)
    permits: list[Condition] = []
    forbids: list[Condition] = []
    for _pid, policy in sorted(residuals.items()):
        cond = _simplify(_policy_condition(policy, translator))
        if cond == Const(False):
            continue
        (forbids if policy.get("effect") == "forbid" else permits).append(cond)
    return _simplify(AllOf((AnyOf(tuple(permits)), Not(AnyOf(tuple(forbids))))))


def _simplify(cond: Condition) -> Condition:
    """Fold constants (so that a policy set without resource conditions becomes ``Const``)."""
    if isinstance(cond, Not):
        inner = _simplify(cond.item)
        return Const(not inner.value) if isinstance(inner, Const) else Not(inner)
    if isinstance(cond, AllOf | AnyOf):
        neutral = isinstance(cond, AllOf)  # All: True is neutral, False absorbs; Any: the reverse
        kept: list[Condition] = []
        for item in (_simplify(c) for c in cond.items):
            if isinstance(item, Const):
                if item.value != neutral:
                    return Const(not neutral)
                continue
            kept.append(item)
        if not kept:
            return Const(neutral)
        if len(kept) == 1:
            return kept[0]
        return AllOf(tuple(kept)) if neutral else AnyOf(tuple(kept))
    return cond


def conditions_text(cond: Condition) -> str:
    """A short readable form of ``cond`` (logs, cache keys).

    Example:
        >>> conditions_text(AnyOf((AttrIs("owner", "ann"), Not(TagIs("embargo")))))
        "(owner='ann' or not tag='embargo')"
    """
    if isinstance(cond, Const):
        return str(cond.value).lower()
    if isinstance(cond, IdIn):
        return f"id in {sorted(cond.ids)!r}"
    if isinstance(cond, AttrIs):
        return f"{cond.attr}={cond.value!r}"
    if isinstance(cond, TagIs):
        return f"tag={cond.tag!r}"
    if isinstance(cond, Not):
        return f"not {conditions_text(cond.item)}"
    joiner = " and " if isinstance(cond, AllOf) else " or "
    return "(" + joiner.join(conditions_text(c) for c in cond.items) + ")"
