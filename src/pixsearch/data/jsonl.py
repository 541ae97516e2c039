"""JSON Lines, the container of the project's data formats (records, documents, KB images).

One JSON object a line, UTF-8, blank lines ignored. `read_rows` yields the objects with their
line numbers and `parse_rows` turns them into typed objects; every error names the file and
the line (`FormatError`). `check_fields` validates a row against a dataclass's typed fields, so
a format is declared once, by its dataclass, and checked strictly.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, Field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class FormatError(ValueError):
    """A data file that does not follow its format; the message names the file and line."""


def parse_line(line: str, where: str) -> dict[str, Any]:
    """The JSON object of one line; `where` ("file:line") prefixes the error of a bad line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise FormatError(f"{where}: not valid JSON ({e})") from e
    if not isinstance(row, dict):
        raise FormatError(f"{where}: each line must be a JSON object, not {type(row).__name__}")
    return row


def read_rows(path: str | Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line of `path`; `what` names the file kind in
    errors ("records", "documents", ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            yield n, parse_line(line, f"{path}:{n}")


def parse_rows(path: str | Path, parse: Callable[[dict[str, Any]], T], what: str) -> list[T]:
    """`parse` applied to every row of `path`; its ValueError / TypeError is re-raised as a
    `FormatError` that names the file and the line."""
    out = []
    for n, row in read_rows(path, what):
        try:
            out.append(parse(row))
        except (ValueError, TypeError) as e:
            raise FormatError(f"{path}:{n}: {e}") from e
    return out


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write `rows` as JSON Lines (UTF-8, non-ASCII kept as is); creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type `hint` (str, int, float, bool, None, Any, Literal,
    unions, list[X], dict[...]). Booleans are not numbers; an int is a valid float."""
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint)
    if origin in (Union, types.UnionType):
        return any(matches(value, h) for h in get_args(hint))
    if origin is list:
        args = get_args(hint)
        return isinstance(value, list) and (not args or all(matches(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


@cache
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, Field]]:
    """The resolved type hints and fields of a dataclass (resolved once: rows are many)."""
    return get_type_hints(cls), {f.name: f for f in fields(cls)}


def check_fields(cls: type, row: dict[str, Any], label: str, skip: Iterable[str] = ()
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `row` into (the dataclass `cls`'s fields, every other key), checking that required
    fields are there and that each field has its declared type. A `null` for a field with a
    default means "use the default" (the key is dropped). `skip` names fields that are not
    read from rows. Errors start with `label` (e.g. "record 'a'")."""
    hints, all_fields = _schema(cls)
    known = {name: f for name, f in all_fields.items() if name not in set(skip)}
    own = {k: v for k, v in row.items() if k in known}
    rest = {k: v for k, v in row.items() if k not in known}
    required = [name for name, f in known.items()
                if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if own.get(name) is None]
    if missing:
        raise ValueError(f"{label} needs {', '.join(repr(m) for m in missing)}")
    for name in list(own):
        value = own[name]
        if value is None and name not in required and not matches(None, hints[name]):
            del own[name]  # null = the field's default
        elif not matches(value, hints[name]):
            raise TypeError(f"{label}: {name!r} must be {_type_name(hints[name])}, "
                            f"not {json.dumps(value, ensure_ascii=False)[:60]}")
    return own, rest
