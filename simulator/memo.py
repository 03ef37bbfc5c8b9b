"""Memoisation by identity, for pure functions of frozen objects (config models, Arch, Efficiency).

The config models are frozen pydantic models and the derived objects frozen dataclasses, so an
object that is the very same one as before has the same value: the search, the sweeps and the
validation cost thousands of layouts of one model on one cluster and can reuse what depends only on
those. Keys are the identities of the leading ``objects`` arguments (default: all of them) and the
values of the rest (ints, strings and None always by value); the cache holds the arguments
themselves, so an identity is never reused while its entry lives. Bounded: cleared when full (the
hot set is a handful of models and clusters).
"""
from __future__ import annotations

import functools

_VALUE_TYPES = (int, str, type(None))   # by value; everything else (floats too) by identity
_CACHES: list[dict] = []


def clear_all() -> None:
    """Empty every cache (benchmarks time cold evaluations with it)."""
    for cache in _CACHES:
        cache.clear()


def by_identity(maxsize: int = 256, objects: int | None = None):
    """Decorator: remember ``fn(*args)`` for the very same argument objects. With ``objects=k`` only
    the first k arguments are keyed by identity, the others (hashable plain values) by value. A
    call with keyword arguments is not cached."""
    def wrap(fn):
        cache: dict = {}
        _CACHES.append(cache)

        def key_of(args: tuple):
            if objects is None:
                return tuple([a if type(a) in _VALUE_TYPES else id(a) for a in args])
            return tuple([id(a) for a in args[:objects]]) + args[objects:]

        @functools.wraps(fn)
        def cached(*args, **kwargs):
            if kwargs:
                return fn(*args, **kwargs)
            key = key_of(args)
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
