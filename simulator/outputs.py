"""The one checked writer for every file trainsim writes (--trace, --write, --draw, --plot, --out).

``check_output`` runs before any work: the path must be a file name (not a folder, pipe or device)
whose folder exists or can be created and is writable, and an existing file is only replaced with
--force. ``write_bytes`` / ``write_text`` / ``save_figure`` then write through a temporary file in
the same folder, renamed over the target when complete, so a full disk or a crash never leaves a
half-written file under the name; any OSError is a ConfigError (exit 2) naming the path.
"""
from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path

from simulator.errors import ConfigError


def _folder_of(p: Path, option: str, shown: str) -> Path:
    """The first existing folder above ``p``: it must be a folder we can write in (the missing
    folders below it are made when the file is written)."""
    folder = p.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot create the file: {folder} is not a folder", source=option, value=shown,
                          expected="a path whose folder exists or can be created")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write in {folder}", source=option, value=shown,
                          expected="a path in a folder you can write to")
    try:   # access() says yes to root everywhere (/proc, a read-only mount): create and remove a file
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".trainsim-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write in {folder} ({exc.strerror or exc})", source=option, value=shown,
                          expected="a path in a folder you can write to") from None
    return folder


def check_distinct(*outputs: tuple[str, "str | Path | list | None"]) -> None:
    """Before any work: no two outputs of one command are the same file (the second would replace
    the first, or the command would fail half way). ``outputs``: (option, path or paths or None)."""
    seen: dict[str, str] = {}
    for option, paths in outputs:
        for path in (paths if isinstance(paths, (list, tuple)) else [paths]):
            if path is None or path == "":
                continue
            key = os.path.realpath(path)
            if key in seen:
                raise ConfigError(f"is also the path of {seen[key]}: one file cannot hold both",
                                  source=option, value=str(path), expected="a different file for each output")
            seen[key] = option


_NAME_MAX = 255   # bytes in one file or folder name: ext4, XFS, APFS and NTFS (in UTF-16 units)


def _check_names(p: Path, option: str, shown: str) -> None:
    longest = max((len(os.fsencode(part)) for part in p.parts), default=0)
    if longest > _NAME_MAX:
        raise ConfigError(f"a name in the path is {longest:,} bytes long; file systems allow {_NAME_MAX}",
                          source=option, value=shown, expected=f"file and folder names of at most {_NAME_MAX} bytes")


def check_output(path: str | Path, option: str, force: bool = False, overwrite_ok: bool = False) -> Path:
    """Before any work: ``path`` can be written. An existing regular file needs ``force`` (or
    ``overwrite_ok``, for a caller that decides itself, e.g. sweep --resume); a folder, pipe,
    device or socket is refused."""
    p, shown = Path(path), str(path)
    _check_names(p, option, shown)
    try:
        if p.is_dir():
            raise ConfigError("is a folder", source=option, value=shown, expected="a file name")
        info = p.stat() if p.exists() or p.is_symlink() else None
    except OSError as exc:
        raise ConfigError(f"cannot check the path ({exc.strerror or exc})", source=option, value=shown) from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("is not a regular file (a pipe, device or socket)", source=option, value=shown,
                              expected="a file name")
        if not (force or overwrite_ok):
            raise ConfigError("the file exists", source=option, value=shown,
                              expected="--force to overwrite it, or another name")
    _folder_of(p, option, shown)
    return p


# names that look like one output file: a folder option refuses them rather than make a folder "x.png"
FILE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".html", ".json", ".csv", ".txt")


def check_folder(path: str | Path, option: str) -> Path:
    """Before any work: ``path`` is, or can be made, a folder we can write in."""
    p, shown = Path(path), str(path)
    _check_names(p, option, shown)
    try:
        p.exists()
    except OSError as exc:
        raise ConfigError(f"cannot check the path ({exc.strerror or exc})", source=option, value=shown) from None
    if p.exists() and not p.is_dir():
        raise ConfigError("is not a folder", source=option, value=shown, expected="a folder name")
    if not p.exists() and p.suffix.lower() in FILE_SUFFIXES:
        raise ConfigError(f"names a {p.suffix} file, but this option writes several files into a folder",
                          source=option, value=shown, expected=f"a folder name, e.g. {p.with_suffix('')}")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot write in {p}", source=option, value=shown,
                              expected="a folder you can write to")
        return p
    _folder_of(p, option, shown)
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` completely or not at all (temporary file + rename)."""
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        tmp = None
    except OSError as exc:
        raise ConfigError(f"cannot write the file ({exc.strerror or exc})", source=str(path),
                          expected="a writable path with free space") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return p


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: str | Path) -> Path:
    """A matplotlib figure in the format of ``path``'s suffix (PNG when it has none)."""
    p = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=p.suffix.lower().lstrip(".") or "png")
    return write_bytes(p, buf.getvalue())
