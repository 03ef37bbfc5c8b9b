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


class _StrictSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no object construction) that also rejects duplicate keys in a mapping."""


def _mapping(loader: _StrictSafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def safe_load(text: str):
    """yaml.safe_load semantics (plain data only), plus an error for duplicate keys."""
    return yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError("file not found", source=str(path))
    if path.is_dir():
        raise ConfigError("is a directory, expected a YAML file", source=str(path))
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
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
    return where


def validate(model: type[M], raw: dict, source: str, overrides: list[Override]) -> M:
    data = apply(raw, overrides, source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise_config_error(exc, model, source_finder(source, overrides, raw))
        raise  # unreachable
