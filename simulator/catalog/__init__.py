"""Hardware catalog shipped with the package: GPU specifications with their sources, as data
(raw mappings). simulator.config.gpu.catalog_gpu validates an entry into a GPUSpec, so the catalog
never imports config."""
from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def _raw() -> dict:
    text = resources.files(__package__).joinpath("gpus.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def gpu_names() -> list[str]:
    return sorted(_raw())


def close_matches(name: str) -> list[str]:
    return difflib.get_close_matches(name.lower(), gpu_names(), n=3, cutoff=0.5)


def entry(name: str) -> dict:
    """The catalog entry ``name`` as written in gpus.yaml; KeyError if there is none."""
    raw = _raw()
    if name not in raw:
        raise KeyError(name)
    return raw[name]
