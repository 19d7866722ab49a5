"""Building a :class:`fitting.flame_fit.FitterConfig` from a config mapping, validated.

:func:`fitter_config` merges a mapping (a ``configs/fitting`` ``config:`` block, a dict, a
DictConfig) and keyword overrides through ``OmegaConf.structured(FitterConfig)``, so an
unknown key or a value of the wrong type fails with an error that names the key and what
was expected, and returns the plain dataclass (tuple fields as tuples, ``sanitize`` a
:class:`fitting.sanitize.SanitizeConfig`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .flame_fit import FitterConfig

__all__ = ["fitter_config"]


def _expected(cls: type, key: str) -> str:
    """'name: type' of a dotted dataclass field path, for error messages."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return f"one of {sorted(fields)}"
        f = fields[part]
        if i == len(parts) - 1:
            return str(f.type)
        cls = f.default_factory if f.default_factory is not dataclasses.MISSING else type(f.default)
    return "?"


def fitter_config(
    cfg: Mapping[str, Any] | DictConfig | None = None,
    /,
    *,
    origin: str = "fitter config",
    **overrides: Any,
) -> FitterConfig:
    """A validated :class:`FitterConfig` from ``cfg`` with ``overrides`` applied on top.

    Args:
        cfg: the fields to set (missing fields keep their defaults); None: defaults only.
        origin: what ``cfg`` came from (a file path), named in errors.
        **overrides: field values that replace those of ``cfg`` (e.g. ``image_size=(128, 128)``).
    Returns:
        FitterConfig; list values of tuple fields become tuples.
    Raises:
        ValueError: unknown key (names it and the known keys) or a value that does not fit
            the field's type (names the key, the type expected and the value).
    """
    given = OmegaConf.create({} if cfg is None else cfg)
    if not isinstance(given, DictConfig):
        raise ValueError(f"{origin}: FitterConfig needs a mapping, got {type(cfg).__name__}")
    given = OmegaConf.merge(given, OmegaConf.create(dict(overrides)))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(FitterConfig), given)
        out = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = str(getattr(err, "full_key", None) or getattr(err, "key", None) or "?")
        if isinstance(err, ConfigKeyError):
            raise ValueError(
                f"{origin}: unknown FitterConfig key {key!r}; expected {_expected(FitterConfig, key)}"
            ) from err
        value = OmegaConf.select(given, key, default=None) if key != "?" else None
        raise ValueError(
            f"{origin}: FitterConfig key {key!r} expected {_expected(FitterConfig, key)}, "
            f"got {value!r} ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from err
    hints = typing.get_type_hints(FitterConfig)
    for f in dataclasses.fields(out):
        value = getattr(out, f.name)
        if isinstance(value, list):
            value = tuple(value)
            setattr(out, f.name, value)
            n = _tuple_length(hints[f.name])
            if n is not None and len(value) != n:
                raise ValueError(
                    f"{origin}: FitterConfig key {f.name!r} expected {f.type} ({n} values), got {list(value)!r}"
                )
    return out


def _tuple_length(hint: Any) -> int | None:
    """Length of a fixed-length tuple type (``tuple[int, int]`` -> 2, also inside Optional);
    None for variable-length tuples and other types (OmegaConf checks only the item type)."""
    for t in typing.get_args(hint) if typing.get_origin(hint) is not tuple else (hint,):
        if typing.get_origin(t) is tuple:
            args = typing.get_args(t)
            return None if Ellipsis in args else len(args)
    return None
