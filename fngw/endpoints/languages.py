"""The ``REQUEST`` assignment in each kernel language, and how to mark a point in stdout.

Kernel Gateway writes ``REQUEST = "<json>"``, a JSON string literal, in every language; in Julia
(``$(...)``), bash and Perl (``$``, backticks, ``@``) request data inside double quotes is then
interpolated, that is run, by the kernel. Here each language gets a literal that its parser cannot
interpolate: Python's own ``repr``, R's raw strings, single-quoted strings in bash, Perl and Ruby,
hex or base64 decoded by the language's standard library where no such literal exists. Every
literal holds the same text: the JSON document as a string, as in Kernel Gateway.
"""

from __future__ import annotations

import base64
import json
import re

_SAFE_JSON_CHARS = re.compile(r"[^A-Za-z0-9 ,:._\-\[\]{}]")


def _python(text: str) -> str:
    return f"REQUEST = {text!r}"


def _r(text: str) -> str:
    dashes = "-"
    while f'){dashes}"' in text:  # pick a raw-string delimiter the text does not contain
        dashes += "-"
    return f'REQUEST <- r"{dashes}({text}){dashes}"'


def _julia(text: str) -> str:
    return f'REQUEST = String(hex2bytes("{text.encode().hex()}"))'


def _scala(text: str) -> str:
    encoded = base64.b64encode(text.encode()).decode()
    return f'var REQUEST = new String(java.util.Base64.getDecoder.decode("{encoded}"), "UTF-8")'


def _single_quoted_shell(text: str) -> str:
    return "REQUEST='" + text.replace("'", "'\\''") + "'"


def _single_quoted_backslash(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _perl(text: str) -> str:
    return f"my $REQUEST = {_single_quoted_backslash(text)}"


def _ruby(text: str) -> str:
    return f"REQUEST = {_single_quoted_backslash(text)}"


def _javascript(text: str) -> str:
    return f"var REQUEST = {json.dumps(text)}"


def _fallback(text: str) -> str:
    """Kernel Gateway's form, with every character that could start an interpolation or escape
    trick in some language written as a ``\\uXXXX`` escape."""
    escaped = _SAFE_JSON_CHARS.sub(lambda m: "".join(f"\\u{b:04x}" for b in _utf16(m.group())), text)
    return f'REQUEST = "{escaped}"'


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


_ASSIGNMENTS = {
    "python": _python,
    "ipython": _python,
    "python3": _python,
    "r": _r,
    "julia": _julia,
    "scala": _scala,
    "bash": _single_quoted_shell,
    "sh": _single_quoted_shell,
    "zsh": _single_quoted_shell,
    "perl": _perl,
    "ruby": _ruby,
    "javascript": _javascript,
    "typescript": _javascript,
}

# Statement that prints ``marker`` on a line of its own (stdout), for languages where fngw can run
# an endpoint and its ResponseInfo in one execution and split the output at the marker.
_PRINT_LINE = {
    "python": lambda marker: f"print({chr(10) + marker!r})",
}


def request_assignment(language: str, request_json: str) -> str:
    """A statement, in ``language``, that sets ``REQUEST`` to the string ``request_json``."""
    return _ASSIGNMENTS.get(language.lower(), _fallback)(request_json)


def print_marker(language: str, marker: str) -> str | None:
    """A statement printing a newline then ``marker`` and a newline, or None if not supported."""
    make = _PRINT_LINE.get(language.lower())
    return make(marker) if make else None
