"""Hardware catalog shipped with the package: GPU specifications with their sources."""
from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import resources

import yaml
from pydantic import ValidationError

from simulator.config.gpu import GPUSpec


@lru_cache(maxsize=1)
def _raw() -> dict:
    text = resources.files(__package__).joinpath("gpus.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def gpu_names() -> list[str]:
    return sorted(_raw())


def close_matches(name: str) -> list[str]:
    return difflib.get_close_matches(name.lower(), gpu_names(), n=3, cutoff=0.5)


@lru_cache(maxsize=None)
def gpu(name: str) -> GPUSpec:
    """The catalog entry `name`; KeyError if there is none."""
    raw = _raw()
    if name not in raw:
        raise KeyError(name)
    try:
        return GPUSpec.model_validate(raw[name])
    except ValidationError as exc:  # the shipped catalog is broken: a bug, not user input
        raise RuntimeError(f"catalog entry {name!r} is invalid: {exc}") from exc
