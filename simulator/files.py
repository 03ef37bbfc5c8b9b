"""Reading the files a user names (workload, cluster, topology, carbon profile): regular files only,
at most a bounded size, decoded as UTF-8; every failure is a ConfigError (exit 2) naming the file."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from simulator.errors import ConfigError


def read_text(path: str | Path, max_bytes: int, *, what: str = "a YAML file", key: str | None = None) -> str:
    """The text of ``path``. A FIFO, device (/dev/zero), folder or socket is refused before reading
    (opened non-blocking, so a FIFO with no writer cannot hang), and so is a file over ``max_bytes``."""
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError("file not found", source=source, path=key, expected=what) from None
    except IsADirectoryError:
        raise ConfigError("is a directory", source=source, path=key, expected=what) from None
    except OSError as exc:
        raise ConfigError(f"cannot open it ({exc.strerror or exc})", source=source, path=key,
                          expected=what) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError("is a directory", source=source, path=key, expected=what)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("is not a regular file (a pipe, device or socket)", source=source, path=key,
                              expected=what)
        if info.st_size > max_bytes:
            raise ConfigError(f"is too big ({info.st_size:,} bytes; the limit is {max_bytes:,})",
                              source=source, path=key, expected=what)
        chunks, total = [], 0
        while True:                       # a file that grows while read is still cut at the limit
            chunk = os.read(fd, min(1 << 16, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ConfigError(f"is too big (over {max_bytes:,} bytes)", source=source, path=key,
                                  expected=what)
    except OSError as exc:
        raise ConfigError(f"cannot read it ({exc.strerror or exc})", source=source, path=key,
                          expected=what) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a text file (not UTF-8 at byte {exc.start})", source=source, path=key,
                          expected=what) from None
