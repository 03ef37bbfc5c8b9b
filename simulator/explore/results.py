"""Results files that grow one row at a time (.csv or .json) and can be read back to resume.

Each row is written with a single write and flushed, so an interrupted study leaves every finished
row readable. CSV: a header, then one line per row. JSON: an array with one row per line that is
closed (``]``) after every row, so the file is valid JSON whenever no write is in progress; a reader
also accepts a file cut in the middle of a row and keeps the rows before it. Floats are written with
Python's shortest round-trip form, so the same numbers give the same bytes.

Next to a results file, ``<file>.study.json`` records the options that define the study (engine,
replicas, seed, inputs, cases), so that a resume never appends rows computed with other options.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Sequence

from simulator.errors import ConfigError, short
from simulator.files import read_text
from simulator.limits import MAX_YAML_BYTES

MAX_RESULTS_BYTES = 1 << 30     # 1 GiB: a million rows of ~1 KB

FORMATS = (".csv", ".json")
_CLOSE = "\n]\n"


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError("unknown results format", source="--out", value=str(path),
                          expected="a file ending in .csv or .json")
    return suffix


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}
MAX_CELL_CHARS = 4000      # an error message in a row is cut here (csv's own field limit is 131072)


def _escape(text: str) -> str:
    """One physical line per row: backslash, newline and carriage return written as \\\\, \\n, \\r."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text) if any(ch in text for ch in _ESCAPES) else text


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # float(): a NumPy float is a float whose repr names its type (NumPy 2: 'np.float64(1.5)')
        return repr(float(value)) if math.isfinite(value) else str(float(value))
    text = str(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[:MAX_CELL_CHARS - 3] + "..."
    return _escape(text)


def _csv_line(values: Sequence[object]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(v) for v in values])
    return buf.getvalue()


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ResultsFile:
    """Appends rows (dicts with the given columns) to a .csv or .json file."""

    def __init__(self, path: str | Path, columns: Sequence[str]):
        self.path, self.columns, self.kind = Path(path), tuple(columns), file_format(path)

    def start(self, resume: bool) -> None:
        """Create the file (header / opening bracket) unless resuming an existing one."""
        if resume and self.path.exists():
            self._repair()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        head = _csv_line(self.columns) if self.kind == ".csv" else "[" + _CLOSE
        self.path.write_text(head, encoding="utf-8")

    def _repair(self) -> None:
        """Drop a row cut in the middle by an interruption, so appending continues cleanly."""
        rows = read_rows(self.path)
        self.start(resume=False)
        for row in rows:
            self.append(row)

    def append(self, row: dict) -> None:
        if self.kind == ".csv":
            with self.path.open("a", encoding="utf-8", newline="") as f:
                f.write(_csv_line([row.get(c) for c in self.columns]))
            return
        text = json.dumps({c: _json_value(row.get(c)) for c in self.columns})
        with self.path.open("r+b") as f:
            end = f.seek(0, 2)
            first = end <= len("[" + _CLOSE)
            f.seek(end - len(_CLOSE))
            f.write((("\n" if first else ",\n") + text + _CLOSE).encode("utf-8"))
            f.truncate()


def _typed(text: str) -> object:
    """A CSV cell back to what was written: empty -> None, true/false, int, float, else text."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(path: str | Path, typed: Sequence[str] = ()) -> list[dict]:
    """Rows of a results file; a trailing partial row is dropped. CSV cells are text, except the
    ``typed`` columns, which are read back as numbers, booleans or None."""
    path = Path(path)
    text = read_text(path, MAX_RESULTS_BYTES, what="a results file (.csv or .json)")
    if file_format(path) == ".csv":
        return _csv_rows(text, path, typed)
    try:
        data = json.loads(text)
        if isinstance(data, list):
            return _checked_rows(data, path)
    except (json.JSONDecodeError, RecursionError):
        pass
    if text.strip() and text.splitlines()[0].strip() != "[":
        # not an array this writer opened (one "[" line, then a row per line): not ours to replace
        raise ConfigError("not a results file: a JSON results file is an array, one row per line",
                          source=str(path), expected="a file `trainsim sweep --out` wrote, or --force to replace it")
    rows = []
    for line in text.splitlines()[1:]:
        line = line.strip().rstrip(",")
        if line in ("", "]"):
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            break
    return _checked_rows(rows, path)


def _checked_rows(rows: list, path: Path) -> list[dict]:
    if not all(isinstance(r, dict) for r in rows):
        raise ConfigError("is not a results file: its rows are not objects", source=str(path),
                          expected="a file written by trainsim sweep --out, or --force")
    return rows


def _csv_rows(text: str, path: Path, typed: Sequence[str]) -> list[dict]:
    """Rows of a CSV written one line per row. A last line that is cut (no newline, or the wrong
    number of cells) was being written when the study stopped: it is dropped; a damaged line
    before it is an error."""
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]      # tail: "" when the file ends with a newline
    if not complete:
        return []
    try:
        header = next(csv.reader([complete[0]]))
        rows = []
        for i, line in enumerate(complete[1:], start=2):
            cells = next(csv.reader([line]), [])
            if len(cells) != len(header):
                if i == len(complete) and not tail:
                    break                           # a cut last record: dropped
                raise ConfigError(f"line {i} has {len(cells)} cells but the header has {len(header)}",
                                  source=str(path), expected="a file written by trainsim sweep --out, or --force")
            rows.append({k: _unescape(v) for k, v in zip(header, cells)})
    except csv.Error as exc:
        raise ConfigError(f"is not a readable CSV ({exc})", source=str(path),
                          expected="a file written by trainsim sweep --out, or --force") from None
    return [{k: _typed(v) if k in typed else v for k, v in r.items()} for r in rows]


def check_columns(path: str | Path, rows: list[dict], columns: Sequence[str]) -> None:
    """A file to resume holds this study's columns: a CSV header line of exactly ``columns``, JSON
    rows with exactly those keys (a file of notes beside a copied .study.json is not a results file)."""
    path = Path(path)
    if file_format(path) == ".csv":
        text = read_text(path, MAX_RESULTS_BYTES, what="a results file (.csv or .json)")
        if not text:   # created, then stopped before its header was written: nothing to keep
            return
        first = text.split("\n", 1)[0]
        try:
            header = next(csv.reader([first]), [])
        except csv.Error:
            header = []
        if header != list(columns):
            raise ConfigError(f"its header is not this study's ({len(header)} columns, first {short(','.join(header[:3]))}; "
                              f"this study writes {len(columns)}, first {','.join(columns[:3])})",
                              source=str(path), expected="the results file this study wrote, or --force to replace it")
        return
    for i, row in enumerate(rows):
        if list(row) != list(columns):
            raise ConfigError(f"row {i + 1} does not have this study's columns", source=str(path),
                              expected="the results file this study wrote, or --force to replace it")


def check_prefix(rows: list[dict], labels: Sequence[str], path: str | Path) -> None:
    """The rows already in a file must be the first rows of this study (same cases, same order)."""
    if len(rows) > len(labels):
        raise ConfigError(f"has {len(rows)} rows but this study has only {len(labels)} cases",
                          source=str(path), expected="the results file of the same study, or --force")
    for i, (row, label) in enumerate(zip(rows, labels)):
        if str(row.get("case")) != str(label):
            raise ConfigError(f"row {i + 1} is case {row.get('case')!r} but this study's case {i + 1} is "
                              f"{label!r}", source=str(path),
                              expected="the results file of the same study (same --grid, same order), or --force")


# how each recorded option is named in messages (keys not listed are named as they are)
_OPTION_NAMES = {"engine": "--fast (engine)", "replicas": "--replicas", "seed": "--seed", "set": "--set",
                 "gpus": "--gpus", "grid": "--grid", "cluster": "--cluster (cluster file)",
                 "workload": "WORKLOAD (workload file)"}


def study_path(path: str | Path) -> Path:
    """The file that records the options a results file was computed with."""
    return Path(f"{path}.study.json")


def write_study(path: str | Path, record: dict) -> None:
    side = study_path(path)
    side.parent.mkdir(parents=True, exist_ok=True)
    side.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def check_study(path: str | Path, record: dict) -> None:
    """The options recorded with a results file must be this study's (a ConfigError names the first
    that differs); a file with no record cannot be resumed safely."""
    side = study_path(path)
    try:
        old = json.loads(read_text(side, MAX_YAML_BYTES, what="a study record"))
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (ConfigError, ValueError, RecursionError):   # RecursionError: nested past the parser's depth
        raise ConfigError(f"cannot resume: no record of the options its rows were computed with ({side} is "
                          "missing or unreadable)", source=str(path),
                          expected="--force to start over, or another --out") from None
    new = json.loads(json.dumps(record, sort_keys=True, default=str))
    for key, value in new.items():
        if key == "fingerprint" or old.get(key) == value:
            continue
        raise ConfigError("cannot resume: its rows were computed with other options", source=str(path),
                          path=_OPTION_NAMES.get(key, key), value=value,
                          expected=f"{old.get(key)!r} as in the run that wrote it, or --force to start over")
    if old.get("fingerprint") != new.get("fingerprint"):
        raise ConfigError("cannot resume: the workload or cluster contents, or the cases, differ from the run "
                          "that wrote it", source=str(path),
                          expected="the results file of the same study (same files, options and --grid), or --force")
