"""YAML read safely: plain data only (SafeLoader), no duplicate or unhashable keys, YAML 1.2
numbers, and a bounded document (nesting, and values once aliases are expanded)."""
from __future__ import annotations

import re

import yaml

from simulator.errors import ConfigError, short
from simulator.limits import MAX_YAML_DEPTH, MAX_YAML_NODES


class _StrictSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no object construction) that also rejects duplicate keys in a mapping."""


def _mapping(loader: _StrictSafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":   # `<<: *base`: merged by construct_mapping, where
            continue                                     # the mapping's own keys win over merged ones
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:     # a list or mapping used as a key
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not a {type(key).__name__}",
                key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {short(key)}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
# No YAML 1.1 base-60 numbers: PyYAML reads `1:1` as 61 and `8:32` as 512, so a switch ratio or a
# time of day would silently become a number. YAML 1.2 dropped them; here they stay text (and a
# number field then says so). The int and float resolvers are rebuilt without the base-60 forms.
_StrictSafeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    # YAML 1.2 integers: decimal and 0x hex only. YAML 1.1's octal (`040` is 32), binary (`0b100`) and
    # digit separators (`1_6` is 16) would silently change a layer count or a batch: they stay text,
    # and a number field then reads the text as decimal or says why it cannot
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
_StrictSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9]*)\.[0-9]*(?:[eE][-+][0-9]+)?|\.[0-9]+(?:[eE][-+][0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
# YAML 1.2 numbers: `1e0`, `2E-3` and `1.` are floats (YAML 1.1, PyYAML's default, reads the first
# two as text). Added last, so an int, a 1.1 float or a date still resolves as before.
_StrictSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+)(?:\.[0-9]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def expanded_size(data: object, limit: int = MAX_YAML_NODES, depth: int = MAX_YAML_DEPTH) -> str | None:
    """None if ``data`` has at most ``limit`` values once its aliases are expanded and is nested at
    most ``depth`` deep; else what is wrong. Stops at the limit, so a billion laughs, or a
    self-referencing alias, costs ``limit`` steps."""
    stack, seen = [(data, 0)], 0
    while stack:
        value, level = stack.pop()
        seen += 1
        if seen > limit:
            return f"more than {limit:,} values once its aliases (*name) are expanded"
        if level > depth:
            return f"nested more than {depth} levels deep"
        if isinstance(value, dict):
            stack.extend((v, level + 1) for kv in value.items() for v in kv)
        elif isinstance(value, (list, tuple)):
            stack.extend((v, level + 1) for v in value)
    return None


def safe_load(text: str, source: str = "YAML"):
    """yaml.safe_load semantics (plain data only), plus errors for duplicate or unhashable keys, a
    nesting too deep to parse, and a document too big once its aliases are expanded (a
    ConfigError naming ``source``; malformed YAML is a yaml.YAMLError)."""
    try:
        data = yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ConfigError("nested too deeply to read", source=source,
                          expected=f"at most {MAX_YAML_DEPTH} levels of sections and lists") from None
    except ValueError as exc:     # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"a value cannot be read ({short(str(exc))})", source=source,
                          expected="numbers of reasonable size") from None
    problem = expanded_size(data)
    if problem:
        raise ConfigError(f"the document is too big: {problem}", source=source,
                          expected=f"at most {MAX_YAML_NODES:,} values and {MAX_YAML_DEPTH} levels")
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    """'at line L, column C: what is wrong' of a YAML parse error (its quoted input capped)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"not valid YAML{where}: {problem[:200]}"
