"""Named, seeded random streams: one numpy Generator per (seed, replica, name).

Every stream is derived with numpy's SeedSequence from the user's seed and a path of names, e.g.
``stream(seed, "replica", 7, "failure", "gpu")``. A stream depends only on that path, never on how
many other streams exist, how many replicas run or in which process, so results are bit-for-bit
reproducible and a replica gives the same numbers alone, in a batch, or in a process pool.
Names are mapped to integers with a stable hash (blake2b), not Python's salted ``hash()``.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

_BLOCK = 256   # draws fetched per refill of a buffered sampler


@lru_cache(maxsize=4096, typed=True)   # pure; a campaign names the same streams in every replica
def _key(part: str | int) -> int:
    """A stable 63-bit integer for one path element (ints are tagged apart from strings)."""
    if isinstance(part, bool) or not isinstance(part, (str, int)):
        raise TypeError(f"stream names are str or int, got {part!r}")
    if isinstance(part, int):
        if part < 0:
            raise ValueError(f"stream indices are non-negative, got {part}")
        text = f"#{part}"
    else:
        text = f"${part}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def seed_sequence(seed: int, *path: str | int) -> np.random.SeedSequence:
    """The SeedSequence of the stream named ``path`` under ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(seed, spawn_key=tuple(_key(p) for p in path))


def stream(seed: int, *path: str | int) -> np.random.Generator:
    """A fresh numpy Generator (PCG64) for the stream named ``path`` under ``seed``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *path)))


class Streams:
    """The streams of one seed under a common path prefix (e.g. one Monte Carlo replica)."""

    def __init__(self, seed: int, *prefix: str | int):
        seed_sequence(seed)  # validates the seed
        self.seed = seed
        self.prefix = prefix

    def get(self, *name: str | int) -> np.random.Generator:
        return stream(self.seed, *self.prefix, *name)

    def child(self, *name: str | int) -> "Streams":
        return Streams(self.seed, *self.prefix, *name)


class Sampler:
    """Buffered draws of one distribution from one stream (fast scalar draws in a DES loop).

    ``kind`` is "exponential" (mean ``scale``) or "weibull" (``shape``, ``scale``). Draws come in
    blocks, so the sequence depends only on the stream, never on when values are consumed.
    """

    def __init__(self, rng: np.random.Generator, kind: str, scale: float, shape: float = 1.0):
        if kind not in ("exponential", "weibull"):
            raise ValueError(f"unknown distribution {kind!r}")
        self._rng, self._kind, self._scale, self._shape = rng, kind, float(scale), float(shape)
        self._buf: list[float] = []
        self._i = 0

    def _refill(self) -> None:
        if self._kind == "exponential":
            block = self._rng.standard_exponential(_BLOCK)
        else:
            block = self._rng.weibull(self._shape, _BLOCK)
        self._buf = (block * self._scale).tolist()
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._refill()
        value = self._buf[self._i]
        self._i += 1
        return value
