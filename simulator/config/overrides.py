"""`--set a.b.c=value` overrides: parsed with YAML's safe loader and applied to the raw mapping."""
from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass

import yaml

from simulator.config.safe_yaml import safe_load
from simulator.errors import ConfigError, clip, short
from simulator.limits import MAX_SET_CHARS


@dataclass(frozen=True)
class Override:
    path: tuple[str, ...]
    value: object
    text: str  # as the user wrote it, for error messages
    label: str = ""  # how to name it in messages; default "--set TEXT"

    @property
    def source(self) -> str:
        return clip(self.label or f"--set {self.text}", 160)


def parse_override(text: str) -> Override:
    if len(text) > MAX_SET_CHARS:
        raise ConfigError(f"the override is too long ({len(text):,} characters)", source="--set",
                          value=text, expected=f"at most {MAX_SET_CHARS:,} characters")
    if "=" not in text:
        raise ConfigError("an override must look like key.path=value", source="--set", value=text,
                          expected="e.g. parallelism.tensor_model_parallel_size=8")
    key, raw = text.split("=", 1)
    key = re.sub(r"\[(\d+)\]", r".\1", key.strip())      # phases[2].num_gpus -> phases.2.num_gpus
    parts = tuple(key.split("."))
    if not key or any(not p for p in parts):
        raise ConfigError("empty key in override", source="--set", value=text,
                          expected="e.g. parallelism.micro_batch_size=2")
    value = _value(raw, text)
    return Override(parts, value if isinstance(value, (str, int, float, bool, type(None))) else copy.deepcopy(value),
                    text)


@functools.lru_cache(maxsize=4096)
def _value(raw: str, text: str):
    """The YAML value of an override's right-hand side (remembered: a search's schedule check parses
    the same layout overrides thousands of times; a list or mapping is copied out by the caller)."""
    try:
        return safe_load(raw, f"--set {short(text)}") if raw.strip() else ""
    except yaml.YAMLError:
        return raw  # plain text such as "200 Gb/s"


def apply(raw: dict, overrides: list[Override], source: str) -> dict:
    """Return a copy of ``raw`` with each override set at its path (sections created as needed).
    A path part that is a whole number indexes a list already in the file (``phases.2.num_gpus``:
    the third phase, counting from 0); it never creates or extends one."""
    out = copy.deepcopy(raw)
    for ov in overrides:
        node = out
        for i, part in enumerate(ov.path):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"{'.'.join(ov.path[:i])} is a list of {len(node)}: index it by position",
                                      source=ov.source, path=".".join(ov.path), value=part,
                                      expected=f"a whole number from 0 to {len(node) - 1}")
                part = int(part)
            if i == len(ov.path) - 1:
                node[part] = ov.value
                break
            nxt = node[part] if isinstance(node, list) else node.get(part)
            if nxt is None and isinstance(node, dict):
                if ov.path[i + 1].isdigit():   # an index into a list the file does not have
                    raise ConfigError(f"{'.'.join(ov.path[:i + 1])} is not a list in {source}: it has no item "
                                      f"{ov.path[i + 1]}", source=ov.source, path=".".join(ov.path),
                                      expected=f"a list in the file to index (e.g. phases:), or "
                                      f"--set {'.'.join(ov.path[:i + 1])}=[...] to give the whole list")
                nxt = node[part] = {}
            if not isinstance(nxt, (dict, list)):
                raise ConfigError(f"cannot set a key below {'.'.join(ov.path[:i + 1])}, which is not a section",
                                  source=ov.source, path=".".join(ov.path), value=nxt,
                                  expected=f"a mapping in {source}")
            node = nxt
    return out
