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
from itertools import chain

import numpy as np

_BLOCK = 256   # draws fetched per refill of a buffered sampler
_FIRST = 8     # the first refill: most streams of a quiet replica draw a few values only


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
        self._keys = tuple(_key(p) for p in prefix)   # the prefix's part of every spawn key

    def get(self, *name: str | int) -> np.random.Generator:
        """``stream(seed, *prefix, *name)``, with the prefix's keys computed once."""
        ss = np.random.SeedSequence(self.seed, spawn_key=self._keys + tuple(_key(n) for n in name))
        return np.random.Generator(np.random.PCG64(ss))

    def child(self, *name: str | int) -> "Streams":
        return Streams(self.seed, *self.prefix, *name)


class Sampler:
    """Buffered draws of one distribution from one stream (fast scalar draws in a DES loop).

    ``kind`` is "exponential" (mean ``scale``) or "weibull" (``shape``, ``scale``). Draws come in
    blocks (a short first one, then _BLOCK at a time), so the sequence depends only on the stream,
    never on when values are consumed: numpy draws these one after another from the bit stream,
    so blocks of any size give the same values. ``rng`` may be a callable returning the Generator,
    made on the first draw (a stream a replica never draws from is never built). ``next`` is the
    draw itself (a C-level callable; ``sampler()`` calls it).
    """

    def __init__(self, rng, kind: str, scale: float, shape: float = 1.0):
        if kind not in ("exponential", "weibull"):
            raise ValueError(f"unknown distribution {kind!r}")
        self._rng, self._kind, self._scale, self._shape = rng, kind, float(scale), float(shape)
        self.next = chain.from_iterable(self._blocks()).__next__

    def _blocks(self):
        rng = self._rng
        if not isinstance(rng, np.random.Generator):
            rng = self._rng = rng()
        size = _FIRST
        while True:
            if self._kind == "exponential":
                block = rng.standard_exponential(size)
            else:
                block = rng.weibull(self._shape, size)
            yield (block * self._scale).tolist()
            size = _BLOCK

    def __call__(self) -> float:
        return self.next()
