"""Memoisation by identity, for pure functions of frozen objects (config models, Arch, Efficiency).

The config models are frozen pydantic models and the derived objects frozen dataclasses, so an
object that is the very same one as before has the same value: the search, the sweeps and the
validation cost thousands of layouts of one model on one cluster and can reuse what depends only on
those. Keys are the arguments' identities (ints and strings by value); the cache holds the
arguments themselves, so an identity is never reused while its entry lives. Bounded: cleared when
full (the hot set is a handful of models and clusters).
"""
from __future__ import annotations

import functools

_VALUE_TYPES = (int, str, type(None))   # by value; everything else (floats too) by identity


def by_identity(maxsize: int = 256):
    """Decorator: remember ``fn(*args)`` for the very same argument objects (a call with keyword
    arguments is not cached)."""
    def wrap(fn):
        cache: dict = {}

        @functools.wraps(fn)
        def cached(*args, **kwargs):
            if kwargs:
                return fn(*args, **kwargs)
            key = tuple(a if type(a) in _VALUE_TYPES else id(a) for a in args)
            hit = cache.get(key)
            if hit is not None:
                return hit[1]
            value = fn(*args)
            if len(cache) >= maxsize:
                cache.clear()
            cache[key] = (args, value)
            return value

        cached.cache_clear = cache.clear
        return cached
    return wrap
