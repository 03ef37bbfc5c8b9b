"""Turn pydantic validation errors into ConfigErrors that name file, key path, value, expectation."""
from __future__ import annotations

import difflib
import types
import typing

from pydantic import BaseModel, ValidationError

from simulator.errors import ConfigError, clip, short


MAX_LINES = 20     # problems listed in one error; the rest are counted


def key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + clip(str(part), 100)
    return out


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated, list):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found:
                return found
    return None


def fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the section at ``loc`` below ``model`` (for 'did you mean')."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):          # an item of a list of sections (phases[0])
            continue
        if current is None or part not in current.model_fields:
            return []
        current = _model_of(current.model_fields[part].annotation)
    return list(current.model_fields) if current else []


def suggest(word: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _clean_message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def _one(err: dict, model: type[BaseModel], prefix: tuple, where) -> str:
    loc = tuple(prefix) + tuple(p for p in err["loc"] if not str(p).startswith("function-"))
    path = key_path(loc)
    source = where(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = fields_at(model, tuple(err["loc"][:-1]))
        hint = suggest(clip(str(err["loc"][-1]), 100), allowed)
        return f"{source}: {path}: unknown key{hint}" + (
            f"; expected one of: {', '.join(allowed)}" if not hint and allowed else "")
    if kind == "missing":
        return f"{source}: {path}: required key is missing"
    value = err.get("input")
    return f"{source}: {path}: {clip(_clean_message(err['msg']))} (got {short(value)})"


def raise_config_error(exc: ValidationError, model: type[BaseModel], where, prefix: tuple = ()) -> None:
    """Raise one ConfigError listing every problem pydantic found, one line each."""
    errors = exc.errors()
    lines = [_one(err, model, prefix, where) for err in errors[:MAX_LINES]]
    if len(errors) > MAX_LINES:
        lines.append(f"... and {len(errors) - MAX_LINES} more problems")
    first = errors[0]
    loc = tuple(prefix) + tuple(first["loc"])
    err = ConfigError("\n".join(lines), path=None)
    err.path, err.source, err.value = key_path(loc), where(loc), first.get("input")
    raise err
