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

from simulator.errors import ConfigError

FORMATS = (".csv", ".json")
_CLOSE = "\n]\n"


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError("unknown results format", source="--out", value=str(path),
                          expected="a file ending in .csv or .json")
    return suffix


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


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
    text = path.read_text(encoding="utf-8")
    if file_format(path) == ".csv":
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(io.StringIO(text)))
        return [{k: _typed(v) if k in typed else v for k, v in r.items()} for r in rows]
    try:
        data = json.loads(text)
        if isinstance(data, list):
            return data
    except json.JSONDecodeError:
        pass
    rows = []
    for line in text.splitlines()[1:]:
        line = line.strip().rstrip(",")
        if line in ("", "]"):
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


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
        old = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
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
