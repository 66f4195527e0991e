"""Typed settings: dataclass configs that check their own fields, and read themselves from dicts.

Every config of the toolkit (``UNetConfig``, ``ScheduleConfig``, ``SamplerConfig``, ``TrainConfig``,
``AdaptConfig``, the report's) is a dataclass deriving from :class:`Settings`. On construction each field is
checked against its annotation (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``tuple[int, ...]``,
``X | None``) and against the bounds given with :func:`number`: numbers must be finite, whole where an
``int`` is asked for, and inside their range; a list declared with :func:`described` may be required to have
no repeated entry (``unique``), a number of entries (``count``) and entries inside bounds (``each``). A bad value raises :class:`~diffadapt.errors.InputError`
naming the field; :meth:`Settings.from_dict` adds the file, so a damaged checkpoint config reads
``RUN/config.json: model.base_channels: expected a whole number, got 'wide'``.

The config is the single source of its defaults and choices: the CLI reads them from here
(``cli/common.add_setting``) rather than restating them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import MISSING, asdict, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from diffadapt.errors import InputError

S = TypeVar("S", bound="Settings")


def number(default: Any, *, at_least: float | None = None, above: float | None = None, at_most: float | None = None,
           below: float | None = None, help: str = "") -> Any:  # noqa: A002
    """A dataclass field with bounds (inclusive ``at_least`` / ``at_most``, exclusive ``above`` / ``below``)."""
    bounds = {"at_least": at_least, "above": above, "at_most": at_most, "below": below, "help": help}
    return dataclasses.field(default=default, metadata=bounds)


SEED_BOUNDS = {"at_least": 0, "below": 2**31}  # a seed: a whole number in 0 .. 2^31 - 1
MAX_RUN_SEEDS = 100  # training runs one command may ask for, one a seed (3,000 seeds ran for days before)


def described(default: Any, help: str, *, unique: bool = False, count: tuple[int, int | None] | None = None,  # noqa: A002
              each: typing.Mapping[str, float] | None = None) -> Any:
    """A dataclass field with a help text (shown by the CLI beside the default); ``unique``: a list whose
    entries may not repeat (each one starts a stage or a run); ``count``: the (least, most) entries such a list
    may have (most None: no bound); ``each``: bounds every entry must keep, as :func:`number` takes them."""
    metadata = {"help": help, "unique": unique, "count": count, "each": dict(each or {})}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def choices_of(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal[...]`` annotation (None for anything else)."""
    return get_args(annotation) if get_origin(annotation) is Literal else None


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_annotation(cls: type, name: str) -> Any:
    return _hints(cls)[name]


def field_default(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
    raise KeyError(name)


def field_help(cls: type, name: str) -> str:
    for f in fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(name)


def is_whole_number(value: Any) -> bool:
    """True for an int (a numpy integer too) that is not a bool (JSON and TOML give ``true`` where a count was
    meant)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """True for a finite int or float (numpy's too) that is not a bool, nor an int too large for a float
    (JSON may spell 10**400 in full)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def short_repr(value: Any) -> str:
    """repr(value) for an error message, cut to 60 characters (a list of 5,000 values would be a 25 kB line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(name: str, annotation: Any, value: Any) -> Any:
    """``value`` checked against ``annotation`` (and converted: lists to tuples, whole floats never to int)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(name, option, value)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if len(errors) == 1 else f"{name}: {short_repr(value)} fits none of its allowed types")
    if origin is Literal:
        allowed = get_args(annotation)
        if isinstance(value, bool) or value not in allowed or type(value) is not type(allowed[0]):
            raise InputError(f"{name}: {short_repr(value)} is not one of {', '.join(map(str, allowed))}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise InputError(f"{name}: expected true or false, got {short_repr(value)}")
        return value
    if annotation is int:
        if not is_whole_number(value):
            raise InputError(f"{name}: expected a whole number, got {short_repr(value)}")
        return int(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputError(f"{name}: expected a number, got {short_repr(value)}")
        if not is_finite_number(value):
            raise InputError(f"{name}: must be a finite number, got {short_repr(value)}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise InputError(f"{name}: expected text, got {short_repr(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{name}: expected a list, got {short_repr(value)}")
        item_types = get_args(annotation)
        item = item_types[0] if item_types else Any
        if len(value) > 10_000:
            raise InputError(f"{name}: list of {len(value)} items is too long")
        items = [value_ if item is Any else coerce(f"{name}[{i}]", item, value_) for i, value_ in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise InputError(f"{name}: expected an object, got {short_repr(value)}")
        return value
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict) and issubclass(annotation, Settings):
            return annotation.from_dict(value, section=name)
        raise InputError(f"{name}: expected an object, got {short_repr(value)}")
    return value


def check_unique(name: str, value: Any, metadata: typing.Mapping[str, Any]) -> None:
    if not metadata.get("unique") or not isinstance(value, (list, tuple)):
        return
    seen = set()
    for entry in value:
        if entry in seen:
            raise InputError(f"{name}: {entry!r} is listed twice")
        seen.add(entry)


def check_entries(name: str, value: Any, metadata: typing.Mapping[str, Any]) -> None:
    """A list's length against ``count`` and each entry against the ``each`` bounds of :func:`described`."""
    if not isinstance(value, (list, tuple)):
        return
    if metadata.get("count") is not None:
        least, most = metadata["count"]
        if len(value) < least:
            raise InputError(f"{name}: needs at least {least} {'entry' if least == 1 else 'entries'}, got {len(value)}")
        if most is not None and len(value) > most:
            raise InputError(f"{name}: takes at most {most} entries, got {len(value)}")
    for index, entry in enumerate(value):
        check_bounds(f"{name}[{index}]", entry, metadata.get("each") or {})


def _shown(number: int | float) -> str:
    # Whole numbers in full: with :g, 2**31 and 2**31 + 1 both read "2.14748e+09".
    return str(number) if isinstance(number, int) else f"{number:.10g}"


def check_bounds(name: str, value: Any, metadata: typing.Mapping[str, Any]) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, above, hi, below = (metadata.get(k) for k in ("at_least", "above", "at_most", "below"))
    if lo is not None and value < lo:
        raise InputError(f"{name}: must be at least {_shown(lo)}, got {_shown(value)}")
    if above is not None and value <= above:
        raise InputError(f"{name}: must be above {_shown(above)}, got {_shown(value)}")
    if hi is not None and value > hi:
        raise InputError(f"{name}: must be at most {_shown(hi)}, got {_shown(value)}")
    if below is not None and value >= below:
        raise InputError(f"{name}: must be below {_shown(below)}, got {_shown(value)}")


class Settings:
    """Mixin for dataclass configs: fields checked on construction, ``to_dict`` / ``from_dict``."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = coerce(f.name, field_annotation(type(self), f.name), getattr(self, f.name))
            check_bounds(f.name, value, f.metadata)
            check_unique(f.name, value, f.metadata)
            check_entries(f.name, value, f.metadata)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Checks across fields; a config overrides this (raising InputError naming the fields)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[S], data: Any, source: str | Path | None = None, section: str | None = None,
                  ignore_unknown: bool = True) -> S:
        """A config from a dict read from a file; any bad field is a one-line error naming the file and field.

        Unknown keys are ignored by default (newer or older checkpoints add fields); missing keys take their
        defaults.
        """
        where = f"{section}." if section else ""
        if not isinstance(data, dict):
            raise InputError(f"{section or 'settings'} must be an object, found {type(data).__name__}", source)
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = [k for k in data if k not in names]
        if unknown and not ignore_unknown:
            raise InputError(f"unknown setting {where}{unknown[0]} (known: {', '.join(sorted(names))})", source)
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except InputError as exc:
            message = str(exc)
            raise InputError(where + message if not message.startswith(where) else message, source) from None
