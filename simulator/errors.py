"""The two kinds of user-facing failure, each with its own exit code.

ConfigError (exit 2): the input is malformed (unknown key, bad unit, value out of range, a layout
that does not divide). InfeasibleError (exit 3): the input is well formed but the layout cannot run
(it does not fit in memory). Anything else that escapes is a bug (exit 1).
"""
from __future__ import annotations

import reprlib
import unicodedata

from simulator.limits import MAX_ECHO_CHARS

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_ECHO_CHARS
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 8, 8, 8


def short(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """repr(value), cut to about ``limit`` characters however big or deep (or self-referencing,
    or alias-expanded) the value is: what an error message echoes of an input."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is named by its type
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def clip(text: str, limit: int = 4 * MAX_ECHO_CHARS) -> str:
    """A message text (which may quote an input) cut to ``limit`` characters."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def unprintable(ch: str) -> bool:
    """A control character (an escape code, a tab, a newline) or a bidirectional override or isolate,
    which reorders the text a terminal shows (Trojan Source)."""
    return unicodedata.category(ch) == "Cc" or "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069"


def visible(text: str) -> str:
    """``text`` safe to print on a terminal: the unprintable characters other than newline (an escape
    code in a name or a flag) written as \\xNN / \\uNNNN."""
    if all(ch == "\n" or (" " <= ch < "\x7f") for ch in text):
        return text
    return "".join(ch if ch == "\n" or not unprintable(ch) else ascii(ch)[1:-1] for ch in text)


class TrainsimError(Exception):
    exit_code = 1


class ConfigError(TrainsimError):
    """Malformed input: names the file, the key path, the value and what was expected."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None,
                 value: object = None, expected: str | None = None):
        self.source, self.path, self.value, self.expected = source, path, value, expected
        parts = []
        if source:
            parts.append(str(source))
        if path:
            parts.append(path)
        head = ": ".join(parts)
        text = message
        if value is not None:
            text += f" (got {short(value)})"
        if expected:
            text += f"; expected {expected}"
        super().__init__(f"{head}: {text}" if head else text)


class InfeasibleError(TrainsimError):
    """A valid layout that cannot run, e.g. it does not fit in GPU memory."""

    exit_code = 3

    def __init__(self, message: str, *, details: dict | None = None):
        self.details = details or {}
        super().__init__(message)
