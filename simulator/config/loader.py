"""Read YAML files (safe_load only) and validate them into the frozen config models."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.config.errors import raise_config_error
from simulator.config.overrides import Override, apply
from simulator.config.safe_yaml import safe_load, yaml_problem
from simulator.errors import ConfigError
from simulator.files import read_text
from simulator.limits import MAX_YAML_BYTES

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> dict:
    text = read_text(path, MAX_YAML_BYTES, what="a YAML file")
    try:
        data = safe_load(text, str(path))
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(exc), source=str(path)) from None
    if data is None:
        raise ConfigError("file is empty", source=str(path), expected="a YAML mapping")
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of keys", source=str(path),
                          value=type(data).__name__, expected="a YAML mapping")
    return data


def _present(raw: dict | None, key: tuple) -> int:
    """How many leading parts of ``key`` exist as nested keys in ``raw``."""
    node, n = raw, 0
    for part in key:
        if not isinstance(node, dict) or part not in node:
            break
        node, n = node[part], n + 1
    return n


def source_finder(source: str, overrides: list[Override], raw: dict | None = None):
    """A function loc -> where that value came from: the file, or the --set that wrote it (or that
    created the section it sits in, when the file does not have that section)."""
    def where(loc: tuple) -> str:
        key = tuple(str(p) for p in loc)
        for ov in reversed(overrides):
            if key[:len(ov.path)] == ov.path:
                return ov.source
        if raw is not None:
            have = _present(raw, key)
            for ov in reversed(overrides):
                if have < len(key) and ov.path[:have + 1] == key[:have + 1] and len(ov.path) > have + 1:
                    return ov.source
        return source
    where.source = source
    where.overrides = tuple(dict.fromkeys(ov.source for ov in overrides))
    return where


def blamed(where, loc: tuple) -> str:
    """Where a check that reads several keys should point: the source of the key it names, and,
    when that is the file, the --set / --gpus overrides given with it too (a cross-key check, such
    as num_gpus against TP x PP, fails on a file key because of an override)."""
    src = where(loc)
    extra = getattr(where, "overrides", ())
    if extra and src == getattr(where, "source", None):
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        return f"{src} (with {shown})"
    return src


def fail(where, path: str, message: str, value: object, expected: str) -> None:
    """Raise the ConfigError of a failed check on the key ``path`` (dotted), pointing at ``blamed``."""
    raise ConfigError(message, source=blamed(where, tuple(path.split("."))), path=path, value=value,
                      expected=expected)


def validate(model: type[M], raw: dict, source: str, overrides: list[Override]) -> M:
    data = apply(raw, overrides, source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise_config_error(exc, model, source_finder(source, overrides, raw))
        raise  # unreachable
