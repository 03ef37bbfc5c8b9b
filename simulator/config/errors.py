"""Turn pydantic validation errors into ConfigErrors that name file, key path, value, expectation."""
from __future__ import annotations

import difflib
import re
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


# pydantic names the model class of a section ("a valid dictionary or instance of ParallelismConfig"):
# the user wrote YAML, so the section is a mapping of keys
_INSTANCE = re.compile(r"a valid dictionary or instance of \w+")


def _clean_message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    msg = _INSTANCE.sub("a section (a mapping of keys)", msg)
    return msg[:1].lower() + msg[1:]


_TAG = re.compile(r"(constrained|function|lax|json|nullable|tagged|default)-[\w-]*(\[.*\])?|"
                  r"(list|dict|tuple|set|literal|union)\[.*\]|int|str|float|bool|none")


def _is_tag(part: object) -> bool:
    """A pydantic union-member or validator tag in an error location ('constrained-int',
    'list[literal[0,1]]', 'str', 'function-after[...]'), not a key the user wrote."""
    return isinstance(part, str) and _TAG.fullmatch(part) is not None


def _clean(err: dict) -> dict:
    if err["type"] == "extra_forbidden":   # its last part is the unknown key as the user wrote it
        return {**err, "loc": tuple(p for p in err["loc"][:-1] if not _is_tag(p)) + err["loc"][-1:]}
    return {**err, "loc": tuple(p for p in err["loc"] if not _is_tag(p))}


def _merged(errors: list[dict]) -> list[dict]:
    """One entry per key: a union's failed alternatives joined with 'or'; then the same problem at
    many items of one list shown once, with the number of other items."""
    by_loc: dict[tuple, dict] = {}
    for err in map(_clean, errors):
        if err["type"] in ("extra_forbidden", "missing"):
            by_loc.setdefault(err["loc"] + (err["type"],), err)
            continue
        key = err["loc"]
        if key in by_loc and by_loc[key]["type"] not in ("extra_forbidden", "missing"):
            if err["msg"] not in by_loc[key]["msg"]:
                by_loc[key] = {**by_loc[key], "msg": by_loc[key]["msg"] + ", or " + _clean_message(err["msg"])}
        else:
            by_loc[key] = err
    entries = list(by_loc.values())
    # a union's alternative that failed at the key itself, while another failed inside it (an int,
    # or a list with a bad item): one problem, said once on the item
    plain = [e for e in entries if e["type"] not in ("extra_forbidden", "missing")]
    shallow = {id(e) for e in plain
               if any(len(d["loc"]) > len(e["loc"]) and d["loc"][:len(e["loc"])] == e["loc"] for d in plain)}
    runs: dict[tuple, dict] = {}
    for err in entries:
        if id(err) in shallow:
            continue
        shape = (tuple("#" if isinstance(p, int) else p for p in err["loc"]), err["msg"], err["type"])
        if shape in runs:
            runs[shape].setdefault("others", []).append(err.get("input"))
        else:
            runs[shape] = dict(err)
    out = list(runs.values())
    for e in plain:
        if id(e) in shallow:
            d = next(d for d in out if len(d["loc"]) > len(e["loc"]) and d["loc"][:len(e["loc"])] == e["loc"])
            d["msg"] = f"{d['msg']} (or, as a whole, {_clean_message(e['msg'])})"
    return out


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
    others = err.get("others") or []
    shown = ", ".join(short(v) for v in others[:3]) + (", ..." if len(others) > 3 else "")
    more = f" (and {len(others)} more items alike: {shown})" if others else ""
    return f"{source}: {path}: {clip(_clean_message(err['msg']))} (got {short(value)}){more}"


def raise_config_error(exc: ValidationError, model: type[BaseModel], where, prefix: tuple = ()) -> None:
    """Raise one ConfigError listing every problem pydantic found, one line each."""
    errors = _merged(exc.errors())
    lines = [_one(err, model, prefix, where) for err in errors[:MAX_LINES]]
    if len(errors) > MAX_LINES:
        lines.append(f"... and {len(errors) - MAX_LINES} more problems")
    first = errors[0]
    loc = tuple(prefix) + tuple(first["loc"])
    err = ConfigError("\n".join(lines), path=None)
    err.path, err.source, err.value = key_path(loc), where(loc), first.get("input")
    raise err
