"""Shapes of the JSON records this package reads back (a dataset's stats.json, a run's
result.json, bench.json…) and the one checker of them; below data/, which checks with it.

A shape is a type or tuple of types, a dict of required keys (more keys are welcome; a Maybe
key may be absent), [shape] or Items for a list, Number for a finite number within bounds,
OrNull for a shape or null, Related for parts that must agree (a histogram's bins and edges).
Readers check a record once, on loading, so a hand-edited or foreign file is refused with one
line naming it and the key, rather than failing deep in a plot or a computation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from higgsbench.common.errors import UsageError

NUMBER = (int, float)
NUMBER_OR_NULL = (*NUMBER, type(None))  # curves write a non-finite point as null


@dataclasses.dataclass(frozen=True)
class Number:
    """A number that must be finite (JSON's NaN and Infinity load as floats, and would pass
    for one), within the bounds given; ``nan`` lets an undefined metric through as NaN."""

    least: float | None = None
    above: float | None = None
    most: float | None = None
    integer: bool = False
    null: bool = False
    nan: bool = False

    def wanted(self) -> str:
        text = "a whole number" if self.integer else "a finite number"
        if self.least is not None and self.most is not None:
            text += f" from {self.least:g} to {self.most:g}"
        else:
            for sign, bound in ((">", self.above), (">=", self.least), ("<=", self.most)):
                text += f" {sign} {bound:g}" if bound is not None else ""
        return text + (" or NaN" if self.nan else "") + (" or null" if self.null else "")

    def problem(self, value, name: str) -> str | None:
        if value is None and self.null:
            return None
        wrong = isinstance(value, bool) or not isinstance(value, int if self.integer else NUMBER)
        odd = isinstance(value, float) and not math.isfinite(value)
        if wrong or (odd and not (self.nan and math.isnan(value))):
            return f"{name} is {_json_value(value)}, expected {self.wanted()}"
        if odd:  # NaN, where it is allowed
            return None
        low = (self.least is not None and value < self.least) or (
            self.above is not None and value <= self.above
        )
        if low or (self.most is not None and value > self.most):
            return f"{name} is {_json_value(value)}, expected {self.wanted()}"
        return None


def entries(n: int) -> str:
    return f"{n:,} entr{'y' if n == 1 else 'ies'}"


FINITE = Number()
POSITIVE = Number(above=0)
NON_NEGATIVE = Number(least=0)
COUNT = Number(least=0, integer=True)


@dataclasses.dataclass(frozen=True)
class Items:
    """A list of ``item`` shapes: exactly ``length`` of them, or from ``least`` to ``most``
    (counted before any item is looked at, so a huge list is refused at once)."""

    item: object
    length: int | None = None
    least: int = 0
    most: int | None = None

    def problem(self, value, name: str) -> str | None:
        if not isinstance(value, list):
            return f"{name} is {_json_kind(value)}, expected a list"
        if self.length is not None and len(value) != self.length:
            return f"{name} has {entries(len(value))}, expected {self.length}"
        if len(value) < self.least:
            return f"{name} has {entries(len(value))}, expected at least {self.least}"
        if self.most is not None and len(value) > self.most:
            return f"{name} has {entries(len(value))}, more than the {self.most:,} allowed"
        for i, item in enumerate(value):
            problem = shape_problem(item, self.item, f"{name}[{i}]")
            if problem:
                return problem
        return None


@dataclasses.dataclass(frozen=True)
class Maybe:
    """A key of a dict shape that may be absent; where present it must fit ``shape``."""

    shape: object


@dataclasses.dataclass(frozen=True)
class OrNull:
    """``shape``, or JSON null."""

    shape: object

    def problem(self, value, name: str) -> str | None:
        return None if value is None else shape_problem(value, self.shape, name)


@dataclasses.dataclass(frozen=True)
class Related:
    """``shape``, whose parts must also agree: once it fits, ``check(value, name)`` says how
    they do not, or None."""

    shape: object
    check: object

    def problem(self, value, name: str) -> str | None:
        return shape_problem(value, self.shape, name) or self.check(value, name)


def same_lengths(*keys: str):
    """A Related check: the lists under ``keys`` are as long as each other (a curve's x and y)."""

    def check(value: dict, name: str) -> str | None:
        first, n = keys[0], len(value[keys[0]])
        for key in keys[1:]:
            if len(value[key]) != n:
                return (
                    f"{name}.{key} has {entries(len(value[key]))} but {name}.{first} has {n}; "
                    "they pair up one to one"
                )
        return None

    return check


def read_record(path: Path, shape: dict, what: str) -> dict:
    """The JSON object in ``path``, checked against ``shape``; every problem with the file
    (missing, a directory, not JSON, keys missing or of the wrong type) is one line naming it
    and saying ``what`` was expected."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file, expected {what}") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc}), expected {what}") from None
    problem = shape_problem(obj, shape)
    if problem:
        raise UsageError(f"{path}: not {what}: {problem}")
    return obj


def shape_problem(value, shape, where: str = "") -> str | None:
    """What in ``value`` does not fit ``shape`` (see above), or None when it fits."""
    name = where or "the file"
    if hasattr(shape, "problem"):
        return shape.problem(value, name)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{name} is {_json_kind(value)}, expected an object"
        missing = [k for k, sub in shape.items() if k not in value and not isinstance(sub, Maybe)]
        if missing:
            more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
            return f"{name} lacks {', '.join(repr(k) for k in missing[:6])}{more}"
        for key, sub in shape.items():
            if key not in value:
                continue
            sub = sub.shape if isinstance(sub, Maybe) else sub
            problem = shape_problem(value[key], sub, f"{where}.{key}" if where else key)
            if problem:
                return problem
        return None
    if isinstance(shape, list):
        return Items(shape[0]).problem(value, name)
    types = shape if isinstance(shape, tuple) else (shape,)
    # JSON true/false load as bool, which Python counts as an int: not a number here
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join(dict.fromkeys(_JSON_NAMES.get(t, t.__name__) for t in types))
        return f"{name} is {_json_kind(value)}, expected {wanted}"
    return None


_JSON_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _json_value(value) -> str:
    """A number as a JSON reader sees it (NaN, Infinity), anything else by its kind."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "Infinity"
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = repr(value)  # 4.0 stays 4.0: where a whole number is wanted, it is not one
        return text if len(text) <= 24 else f"{text[:12]}… ({len(text)} digits)"
    return _json_kind(value)
