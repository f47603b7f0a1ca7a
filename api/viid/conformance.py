"""Our own interpreter of MEGVII's GA/T 1400 rule template (``megvii_conf_viid130.json``).

The template is a list of *interfaces*; each holds *rules* ``{name, parent, type, required,
funcType, funcArgs, reuseRule}``. ``parent`` names the JSON node a field lives in (``""`` or the
interface's own name = the node the interface is applied to); ``reuseRule`` applies another
interface to an object/array node (to every element of an array). The 26 function types are
documented in the template's ``Manual`` key; the implementation of each is in ``_FUNCS`` below.

Interpretation choices (the manual is one line per type):
- a rule without ``required`` (or ``"D"``) is optional; funcType 7 fills a default, so a missing
  field with a default is not a violation;
- numeric enums (funcType 3) compare numbers with numbers and strings with strings, never a
  JSON boolean with 0/1;
- funcType 13 demands an integral number; 14 also checks the number of decimals;
- funcType 24 (base64, "max characters per line") demands strict base64 on one line when the
  limit is 0, else lines no longer than the limit; a ``data:`` prefix is therefore a violation;
- funcTypes 20, 21, 25 transform data and check nothing;
- dependencies (22/23) ``[k, v, keys…]``: when field ``k`` equals ``v`` (a missing field equals
  ``""``), every key must be present and non-empty;
- ``CheckHard`` 1 = unknown fields are dropped without an error: they are reported separately in
  :attr:`ConformanceReport.unknown_fields`, never as violations.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sharpeyes.pipeline.data import shared_dir
from sharpeyes.pipeline.errors import ConfigError

log = logging.getLogger(__name__)

TEMPLATE_FILE = "conformance/gat1400/megvii_conf_viid130.json"
_NUMERIC = re.compile(r"[0-9]*")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

JsonValue = object


@dataclass(frozen=True, slots=True)
class RuleViolation:
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    interface: str
    violations: tuple[RuleViolation, ...]
    unknown_fields: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        return "; ".join(str(v) for v in self.violations[:10])


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    parent: str
    type: str
    required: bool
    func_type: int | None
    func_args: object
    reuse: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Rule:
        ft = raw.get("funcType")
        return cls(
            name=str(raw["name"]),
            parent=str(raw.get("parent", "")),
            type=str(raw.get("type", "string")),
            required=raw.get("required") == "R",
            func_type=int(ft) if isinstance(ft, int) else None,
            func_args=raw.get("funcArgs"),
            reuse=str(raw["reuseRule"]) if raw.get("reuseRule") else None,
        )


@dataclass(slots=True)
class _Ctx:
    violations: list[RuleViolation] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def add(self, path: str, rule: Rule, message: str) -> None:
        self.violations.append(RuleViolation(path, f"{rule.name}/f{rule.func_type}", message))


_Scope = tuple[str, frozenset[str]]


def default_template_path() -> Path:
    """The MEGVII template in the shared data folder (:func:`pipeline.data.shared_dir`)."""
    return shared_dir() / TEMPLATE_FILE


class RuleTemplate:
    """A loaded rule template; :meth:`validate` checks one payload against one interface."""

    def __init__(self, raw: Mapping[str, object]) -> None:
        templates = raw.get("Templates")
        if not isinstance(templates, list):
            raise ConfigError("rule template has no 'Templates' list")
        self.name = str(raw.get("Name", ""))
        self.check_hard = int(str(raw.get("CheckHard", 1)))
        self._rules: dict[str, list[Rule]] = {}
        for t in templates:
            self._rules[str(t["interface"])] = [Rule.from_json(r) for r in t.get("rules", [])]
        self._reused = {r.name: r for r in self._rules.get("reusedRules", [])}

    @classmethod
    def load(cls, path: Path | None = None) -> RuleTemplate:
        p = path or default_template_path()
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read rule template {p}: {e}") from e
        return cls(raw)

    @property
    def interfaces(self) -> list[str]:
        return list(self._rules)

    def validate(self, interface: str, payload: JsonValue) -> ConformanceReport:
        if interface not in self._rules:
            raise ConfigError(f"rule template has no interface {interface!r}")
        ctx = _Ctx()
        if not isinstance(payload, dict):
            ctx.violations.append(RuleViolation("$", interface, "payload is not a JSON object"))
        else:
            self._check_object([(interface, frozenset({"", interface}))], payload, "$", ctx)
        return ConformanceReport(interface, tuple(ctx.violations), tuple(ctx.unknown))

    # -- tree walk -------------------------------------------------------------------------

    def _check_object(
        self, scopes: Sequence[_Scope], obj: Mapping[str, object], path: str, ctx: _Ctx
    ) -> None:
        level = [
            (tpl, r) for tpl, parents in scopes for r in self._rules[tpl] if r.parent in parents
        ]
        known = {r.name for _, r in level}
        ctx.unknown.extend(f"{path}.{k}" for k in obj if k not in known)
        for tpl, rule in level:
            self._check_field(tpl, rule, obj, path, ctx)

    def _child_scopes(self, tpl: str, rule: Rule) -> list[_Scope]:
        scopes: list[_Scope] = []
        if any(r.parent == rule.name for r in self._rules[tpl]):
            scopes.append((tpl, frozenset({rule.name})))
        if rule.reuse and rule.reuse in self._rules:
            scopes.append((rule.reuse, frozenset({"", rule.reuse, rule.name})))
        return scopes

    def _check_field(
        self, tpl: str, rule: Rule, obj: Mapping[str, object], path: str, ctx: _Ctx
    ) -> None:
        here = f"{path}.{rule.name}"
        if rule.name not in obj:
            if rule.required and rule.func_type != 7:
                ctx.add(here, rule, "required field is missing")
            return
        value = obj[rule.name]
        if not _type_ok(rule.type, value):
            ctx.add(here, rule, f"expected JSON {rule.type}, got {_json_type(value)}")
            return
        message = self._run_func(rule.func_type, rule.func_args, value)
        if message:
            ctx.add(here, rule, message)
        scopes = self._child_scopes(tpl, rule)
        if isinstance(value, dict) and scopes:
            self._check_object(scopes, value, here, ctx)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict) and scopes:
                    self._check_object(scopes, item, f"{here}[{i}]", ctx)
                elif scopes:
                    ctx.add(f"{here}[{i}]", rule, "array element is not an object")

    def _run_func(self, func_type: int | None, args: object, value: object) -> str | None:
        if func_type is None:
            return None
        if func_type == 8:
            return self._reused_check(args, value)
        func = _FUNCS.get(func_type)
        if func is None:
            return None
        return func(self, _as_list(args), value)

    def _reused_check(self, args: object, value: object) -> str | None:
        first = args[0] if isinstance(args, list) and args else args
        ref = str(first).split("/")[-1]
        rule = self._reused.get(ref)
        if rule is None:
            return f"unknown reused rule {args!r}"
        if not _type_ok(rule.type, value):
            return f"expected JSON {rule.type} for {ref}, got {_json_type(value)}"
        return self._run_func(rule.func_type, rule.func_args, value)

    def run_spec(self, spec: object, value: object) -> str | None:
        """Run a nested ``[funcType, args…]`` spec (funcTypes 16, 18, 19)."""
        items = _as_list(spec)
        if not items or not isinstance(items[0], int):
            return f"bad nested rule {spec!r}"
        return self._run_func(items[0], items[1:], value)


# -- helpers ---------------------------------------------------------------------------------


def _as_list(args: object) -> list[object]:
    if isinstance(args, list):
        return args
    return [] if args is None else [args]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_ok(expected: str, value: object) -> bool:
    return _json_type(value) == {"boolean": "bool"}.get(expected, expected)


def _num(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _ints(args: list[object]) -> list[int]:
    return [int(a) for a in args if isinstance(a, int | float) and not isinstance(a, bool)]


_Func = Callable[[RuleTemplate, list[object], object], str | None]


def _f_len_eq(_: RuleTemplate, args: list[object], x: object) -> str | None:
    n = _ints(args)[:1]
    if not isinstance(x, str) or not n or len(x) != n[0]:
        return f"length must be {n}, got {x!r}"
    return None


def _f_range(_: RuleTemplate, args: list[object], x: object) -> str | None:
    v, lim = _num(x), _ints(args)
    if v is None or len(lim) < 2 or not lim[0] <= v <= lim[1]:
        return f"value {x!r} not in [{lim[0] if lim else '?'}, {lim[1] if len(lim) > 1 else '?'}]"
    return None


def _f_enum(_: RuleTemplate, args: list[object], x: object) -> str | None:
    if not any(_same(x, a) for a in args):
        return f"value {x!r} not in {args!r}"
    return None


def _f_len_range(_: RuleTemplate, args: list[object], x: object) -> str | None:
    lim = _ints(args)
    if not isinstance(x, str) or len(lim) < 2 or not lim[0] <= len(x) <= lim[1]:
        return f"length of {x!r} not in {lim!r}"
    return None


def _f_len_enum(_: RuleTemplate, args: list[object], x: object) -> str | None:
    if not isinstance(x, str) or len(x) not in _ints(args):
        return f"length of {x!r} not in {args!r}"
    return None


def _digits(x: object) -> str | None:
    return x if isinstance(x, str) and _NUMERIC.fullmatch(x) else None


def _f_digits_eq(t: RuleTemplate, args: list[object], x: object) -> str | None:
    if _digits(x) is None:
        return f"{x!r} is not a numeric string"
    return _f_len_eq(t, args, x)


def _f_charset(_: RuleTemplate, args: list[object], x: object) -> str | None:
    allowed = str(args[0]) if args else ""
    if not isinstance(x, str) or any(c not in allowed for c in x):
        return f"{x!r} has characters outside the allowed set"
    return None


def _f_digits_range(t: RuleTemplate, args: list[object], x: object) -> str | None:
    if _digits(x) is None:
        return f"{x!r} is not a numeric string"
    return _f_len_range(t, args, x)


def _f_digits_enum(t: RuleTemplate, args: list[object], x: object) -> str | None:
    if _digits(x) is None:
        return f"{x!r} is not a numeric string"
    return _f_len_enum(t, args, x)


def _f_date(_: RuleTemplate, args: list[object], x: object) -> str | None:
    lengths = _ints(args) or [14]
    if not isinstance(x, str) or len(x) not in lengths:
        return f"date {x!r} must have length in {lengths}"
    if x == "":
        return None
    try:
        dt.datetime.strptime(x, "%Y%m%d%H%M%S")
    except ValueError:
        return f"date {x!r} is not YYYYMMDDhhmmss"
    return None


def _f_int_range(t: RuleTemplate, args: list[object], x: object) -> str | None:
    v = _num(x)
    if v is None or not float(v).is_integer():
        return f"{x!r} is not an integer"
    return _f_range(t, args[:2], x)


def _f_float_precision(t: RuleTemplate, args: list[object], x: object) -> str | None:
    msg = _f_range(t, args[:2], x)
    digits = _ints(args[2:3])
    if msg is None and digits and isinstance(x, float):
        decimals = repr(x).split(".")[1] if "." in repr(x) else ""
        if "e" not in decimals and len(decimals) > digits[0]:
            return f"{x!r} has more than {digits[0]} decimals"
    return msg


def _f_bool_str(_: RuleTemplate, args: list[object], x: object) -> str | None:
    allowed = args or ["", "false", "true"]
    if not isinstance(x, str) or x not in allowed:
        return f"{x!r} is not a boolean string {allowed!r}"
    return None


def _f_split(t: RuleTemplate, args: list[object], x: object) -> str | None:
    if len(args) < 2 or not isinstance(x, str):
        return f"cannot split {x!r}"
    sep, spec = str(args[0]), [args[1], *args[2:]]
    for part in x.split(sep):
        msg = t.run_spec(spec, part)
        if msg:
            return f"element {part!r}: {msg}"
    return None


def _f_all(t: RuleTemplate, args: list[object], x: object) -> str | None:
    for spec in args:
        msg = t.run_spec(spec, x)
        if msg:
            return msg
    return None


def _f_any(t: RuleTemplate, args: list[object], x: object) -> str | None:
    messages = [t.run_spec(spec, x) for spec in args]
    if all(messages):
        return "no alternative matched: " + " | ".join(m for m in messages if m)
    return None


def _f_numeric_range(t: RuleTemplate, args: list[object], x: object) -> str | None:
    if not isinstance(x, str) or _num(x) is None:
        return f"{x!r} is not a numeric string"
    return _f_range(t, args[:2], x)


def _dependency(deps: list[object], obj: Mapping[str, object]) -> str | None:
    for dep in deps:
        items = _as_list(dep)
        if len(items) < 3:
            continue
        key, expected = str(items[0]), items[1]
        actual = obj.get(key, "")
        if not _same(actual, expected):
            continue
        missing = [str(k) for k in items[2:] if obj.get(str(k)) in (None, "")]
        if missing:
            return f"{key}={expected!r} requires {', '.join(missing)}"
    return None


def _f_obj_dep(_: RuleTemplate, args: list[object], x: object) -> str | None:
    return _dependency(args, x) if isinstance(x, dict) else "not an object"


def _f_arr_dep(_: RuleTemplate, args: list[object], x: object) -> str | None:
    if not isinstance(x, list):
        return "not an array"
    for i, item in enumerate(x):
        msg = _dependency(args, item) if isinstance(item, dict) else "element is not an object"
        if msg:
            return f"[{i}] {msg}"
    return None


def _f_base64(_: RuleTemplate, args: list[object], x: object) -> str | None:
    if not isinstance(x, str):
        return "base64 data is not a string"
    limit = (_ints(args) or [0])[0]
    lines = x.split("\n")
    if limit <= 0 and len(lines) > 1:
        return "base64 data must be a single line"
    if limit > 0 and any(len(line.rstrip("\r")) > limit for line in lines):
        return f"base64 line longer than {limit}"
    flat = "".join(line.rstrip("\r") for line in lines)
    if len(flat) % 4 or not _B64.fullmatch(flat):
        return "data is not plain base64 (prefix or invalid characters?)"
    try:
        base64.b64decode(flat, validate=True)
    except (binascii.Error, ValueError):
        return "data is not valid base64"
    return None


_FUNCS: dict[int, _Func] = {
    1: _f_len_eq,
    2: _f_range,
    3: _f_enum,
    4: _f_len_range,
    5: _f_len_enum,
    6: _f_digits_eq,
    9: _f_charset,
    10: _f_digits_range,
    11: _f_digits_enum,
    12: _f_date,
    13: _f_int_range,
    14: _f_float_precision,
    15: _f_bool_str,
    16: _f_split,
    17: _f_numeric_range,
    18: _f_all,
    19: _f_any,
    22: _f_obj_dep,
    23: _f_arr_dep,
    24: _f_base64,
}


@lru_cache(maxsize=4)
def load_default_template(path: str | None = None) -> RuleTemplate:
    """The shared MEGVII template, loaded once per process."""
    return RuleTemplate.load(Path(path) if path else None)


# interface name for each top-level wrapper key we send or receive
INTERFACE_FOR_KEY: dict[str, str] = {
    "RegisterObject": "Register",
    "UnregisterObject": "UnRegister",
    "KeepaliveObject": "Keepalive",
    "SystemTimeObject": "SystemTimeObject",
    "MotorVehicleListObject": "motorvehicles",
    "NonMotorVehicleListObject": "nonmotorvehicles",
    "PersonListObject": "persons",
    "FaceListObject": "faces",
    "SubscribeListObject": "Subscribes",
    "SubscribeNotificationListObject": "SubscribeNotifications",
}


def interface_for(payload: Mapping[str, object]) -> str | None:
    """The template interface that checks a payload, chosen by its wrapper key."""
    for key in payload:
        if key in INTERFACE_FOR_KEY:
            return INTERFACE_FOR_KEY[key]
    return None
