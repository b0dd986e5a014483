"""Where a cell's source lines are in the ``.ipynb`` file, for problems located as ``file:line:col``.

nbformat reads a notebook into nodes without positions, so this reads the file's text again, and
only when there is a problem to locate. Each cell's ``source`` is found by its key, and accepted only
if the value there decodes to that cell's source (so a ``"source"`` key in some metadata or output
is skipped). A source written as a list of strings (as Jupyter writes it) has each line at its own
position; one written as a single string has its lines at the ``\\n`` escapes within it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SOURCE_KEY = re.compile(r'"source"\s*:\s*')
_DECODER = json.JSONDecoder()


class CellLocator:
    """Positions in one notebook file. ``locate(cell, line, col)`` turns a 1-based position in a
    cell's source into a 1-based (line, column) in the file; None when the file cannot say (it
    changed or is unreadable: the caller then locates the problem less precisely)."""

    def __init__(self, path: Path):
        self.path = path
        self._text = ""
        # cell index: where each source line starts, and whether the source is a list of strings
        self._starts: dict[int, tuple[list[int], bool]] | None = None

    def locate(self, cell_index: int, line: int = 1, col: int = 1) -> tuple[int, int] | None:
        """The file position of column ``col`` of line ``line`` of cell ``cell_index``'s source."""
        if self._starts is None:
            try:
                self._text = self.path.read_text(encoding="utf-8")
            except (OSError, ValueError):
                self._text = ""
            self._starts = _source_starts(self._text)
        starts, listed = self._starts.get(cell_index, ([], False))
        if not starts:
            return None
        start = starts[min(max(line, 1), len(starts)) - 1]
        return _position(self._text, _advance(self._text, start, max(col, 1) - 1, listed))


def _source_starts(text: str) -> dict[int, tuple[list[int], bool]]:
    try:
        cells = json.loads(text).get("cells")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(cells, list):
        return {}
    found: dict[int, tuple[list[int], bool]] = {}
    keys = SOURCE_KEY.finditer(text)
    for index, cell in enumerate(cells):
        wanted = cell.get("source") if isinstance(cell, dict) else None
        if wanted is None:
            continue
        for key in keys:  # in file order: a cell's source comes after the previous cell's
            starts = _starts_if(text, key.end(), wanted)
            if starts is not None:
                found[index] = (starts, isinstance(wanted, list))
                break
    return found


def _starts_if(text: str, offset: int, wanted: Any) -> list[int] | None:
    """The offsets where each source line begins, if the JSON value at ``offset`` is ``wanted``."""
    try:
        value, _ = _DECODER.raw_decode(text, offset)
    except ValueError:
        return None
    if value != wanted:
        return None
    if isinstance(value, str):
        return _string_line_starts(text, offset)
    if not isinstance(value, list):  # not a valid source (a notebook nbformat refuses): its place
        return [offset]
    # Jupyter writes one line a string, each ending with "\n"; other writers split lines anywhere.
    starts: list[int] = []
    line_open = False  # the previous string ended within a line, which this one goes on with
    at = offset + 1  # after "["
    for _ in value:
        while text[at] in " \t\r\n,":
            at += 1
        inner = _string_line_starts(text, at) if text[at] == '"' else [at]
        if not line_open:
            starts.append(inner[0])
        line_open = True
        for start in inner[1:]:
            if text[start] == '"':  # the "\n" ended the string: the next one starts a line
                line_open = False
            else:
                starts.append(start)
        _, at = _DECODER.raw_decode(text, at)
    return starts or [offset + 1]


def _string_line_starts(text: str, offset: int) -> list[int]:
    """Where each line of the JSON string at ``offset`` starts: its first character, and after each
    ``\\n`` escape in it."""
    starts = [offset + 1]
    at = offset + 1
    while text[at] != '"':
        if text[at] == "\\":
            if text[at + 1] == "n":
                starts.append(at + 2)
            at += 2
        else:
            at += 1
    return starts


def _advance(text: str, at: int, characters: int, listed: bool = False) -> int:
    """The offset ``characters`` characters of the source further into the JSON string at ``at``:
    an escape (``\\"``, ``\\t``, ``\\u00e9``, a surrogate pair) is one character of the source but
    several of the file; with ``listed`` (a source given as a list of strings) a line goes on into
    the next string. Stops at the end of the line or of the source."""
    while characters > 0:
        if text[at] == '"' and listed:
            after = at + 1
            while text[after] in " \t\r\n,":
                after += 1
            if text[after] != '"':
                break
            at = after + 1  # the line goes on in the next string
            continue
        if text[at] == '"' or text.startswith("\\n", at):
            break
        characters -= 1
        if text[at] != "\\":
            at += 1
        elif text[at + 1] != "u":
            at += 2
        else:
            high = 0xD800 <= int(text[at + 2 : at + 6], 16) < 0xDC00
            at += 12 if high and text.startswith("\\u", at + 6) else 6  # a pair is one character
    return at


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
