"""Read YAML files (safe_load only) and validate them into the frozen config models."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.config.errors import raise_config_error
from simulator.config.overrides import Override, apply
from simulator.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError("file not found", source=str(path))
    if path.is_dir():
        raise ConfigError("is a directory, expected a YAML file", source=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML{where}: {problem}", source=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not a text file", source=str(path)) from None
    if data is None:
        raise ConfigError("file is empty", source=str(path), expected="a YAML mapping")
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of keys", source=str(path),
                          value=type(data).__name__, expected="a YAML mapping")
    return data


def source_finder(source: str, overrides: list[Override], prefix: tuple[str, ...] = ()):
    """A function loc -> where that value came from: the file, or the --set that wrote it."""
    def where(loc: tuple) -> str:
        key = tuple(str(p) for p in loc)
        for ov in reversed(overrides):
            n = len(ov.path) - len(prefix)
            if ov.path[:len(prefix)] == prefix and key[:n] == ov.path[len(prefix):]:
                return ov.source
        return source
    return where


def validate(model: type[M], raw: dict, source: str, overrides: list[Override],
             prefix: tuple[str, ...] = ()) -> M:
    data = apply(raw, overrides, source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise_config_error(exc, model, source_finder(source, overrides, prefix))
        raise  # unreachable
