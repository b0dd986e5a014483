"""From an execution's outcome to the HTTP response.

Body precedence follows Kernel Gateway: a cell error is a 500; else the stdout; else the
``execute_result`` bundle as JSON; else empty; ``Content-Type: text/plain`` and 200 unless the
ResponseInfo cell says otherwise. Beyond Kernel Gateway, a rich representation from the cell's
display output is the body when the ResponseInfo's Content-Type names it, or, for a cell that
printed nothing, when the request's Accept names it; binary types are base64-decoded.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import falcon

from fngw.http.accept import named_preference
from fngw.kernels import ExecutionError, strip_ansi

from .errors import CellFailed, ResponseInfoInvalid
from .execution import Outcome

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_NO_BODY = (204, 304)
# Headers a cell must not set: they describe the connection or the body framing, which the server owns.
_RESERVED = {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer"}


def _is_text(mime: str) -> bool:
    return (
        mime.startswith("text/")
        or mime in ("image/svg+xml", "application/javascript")
        or mime.endswith(("+xml", "+json", "/json", "/xml"))
    )


def with_charset(mime: str) -> str:
    """``mime`` with ``; charset=utf-8`` when it is a text type whose charset a client would
    otherwise guess (``text/*`` defaults to US-ASCII or Latin-1; XML may carry a charset parameter).
    JSON defines no charset parameter (RFC 8259: it is always UTF-8), nor do binary types."""
    if mime.startswith("text/") or mime.endswith(("+xml", "/xml")):
        return f"{mime}; charset=utf-8"
    return mime


ASKED_TO_EXIT = (
    "the cell called exit() or quit(), which asks the client to stop the kernel; a cell cannot stop its "
    "kernel, so the request failed and the kernel keeps serving"
)


def describe_failure(ename: str, evalue: str, what: str = "the cell") -> str:
    """One sentence naming how a cell failed, for the error body's ``message``.

    ``SystemExit`` (``sys.exit()``, ``exit()``) names its exit code: IPython catches it, so the
    kernel keeps running and the request fails. Kernels that report no error name (bash_kernel
    sends ``ename: ""`` and the exit status as ``evalue``) are described by the value alone."""
    if ename == "SystemExit" and evalue == "exit()":  # pool kernels raise it for exit() and quit()
        return ASKED_TO_EXIT.replace("the cell", what, 1)
    if ename == "SystemExit":
        if evalue in ("", "None"):
            how = "with exit code 0"
        elif evalue.lstrip("-").isdigit():
            how = f"with exit code {evalue}"
        else:
            how = f"with the message {evalue!r} (exit code 1)"
        return (
            f"{what} called sys.exit() {how} (SystemExit); a cell cannot stop its kernel, "
            "so the request failed and the kernel keeps serving"
        )
    if not ename and evalue:
        return f"{what} failed: the kernel reported {evalue!r} (no error name; shell kernels report the exit status)"
    if not ename:
        return f"{what} failed; the kernel gave no error name or value"
    return f"{what} raised {ename}: {evalue}" if evalue else f"{what} raised {ename}"


def cell_error(outcome_error: ExecutionError, *, tracebacks: bool, what: str = "the cell") -> CellFailed:
    """``CellFailed`` for a cell's error; with ``tracebacks``, its traceback without colours."""
    return CellFailed(
        describe_failure(outcome_error.ename, outcome_error.evalue, what),
        outcome_error.ename,
        outcome_error.evalue,
        [strip_ansi(line) for line in outcome_error.traceback] if tracebacks else None,
    )


def parse_response_info(stdout: str) -> tuple[int | None, list[tuple[str, str]]]:
    """Status and headers from the JSON a ResponseInfo cell printed: ``(status or None, [(name,
    value), ...])``. Raises ``ResponseInfoInvalid`` naming what is wrong."""
    try:
        info = json.loads(stdout)
    except ValueError:
        raise ResponseInfoInvalid(f"the ResponseInfo cell must print JSON; it printed {stdout[:200]!r}") from None
    if not isinstance(info, dict):
        raise ResponseInfoInvalid("the ResponseInfo cell must print a JSON object with 'status' and 'headers'")
    status = info.get("status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599):
        raise ResponseInfoInvalid(f"ResponseInfo status must be an integer from 100 to 599, not {status!r}")
    headers: list[tuple[str, str]] = []
    raw_headers = info.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise ResponseInfoInvalid("ResponseInfo headers must be a JSON object")
    for name, value in raw_headers.items():
        values = value if isinstance(value, list) else [value]
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED:
            raise ResponseInfoInvalid(f"ResponseInfo header name {name!r} is not allowed")
        for item in values:
            text = str(item) if not isinstance(item, str) else item
            if any(c in text for c in "\r\n\0"):
                raise ResponseInfoInvalid(f"ResponseInfo header {name!r} contains a line break")
            headers.append((name, text))
    return status, headers


def _bundle_with(outputs: list[dict[str, Any]], mime: str) -> Any:
    for output in reversed(outputs):  # the latest representation wins
        data = output.get("data") or {}
        if mime in data:
            return data[mime]
    return None


def _preferred(req: falcon.Request, outputs: list[dict[str, Any]]) -> str | None:
    """The rich type the client names in Accept and prefers among those the cell displayed, other
    than text/plain (what it printed): see ``fngw.http.accept``."""
    displayed = {mime.lower() for output in outputs for mime in (output.get("data") or {})}
    chosen = named_preference(req, displayed - {"text/plain"})
    if chosen is None:
        return None
    return next(mime for output in outputs for mime in (output.get("data") or {}) if mime.lower() == chosen)


def _rich_body(value: Any, mime: str) -> bytes:
    if isinstance(value, list):  # nbformat allows text split in lines
        value = "".join(value)
    if mime.endswith("json") and not isinstance(value, str):
        return json.dumps(value).encode()
    if _is_text(mime):
        return str(value).encode()
    return base64.b64decode(value)


def render(req: falcon.Request, resp: falcon.Response, outcome: Outcome, *, tracebacks: bool) -> None:
    """Set ``resp`` from ``outcome`` by the precedence in the module docstring. Raises
    ``CellFailed`` (the cell or its ResponseInfo failed, or asked to exit) and
    ``ResponseInfoInvalid``."""
    cell = outcome.cell
    if not cell.ok:
        raise cell_error(cell.error or ExecutionError("Error", cell.status, []), tracebacks=tracebacks)
    if any(p.get("source") == "ask_exit" for p in cell.payload):
        raise CellFailed(ASKED_TO_EXIT, "SystemExit", "exit()")
    if outcome.response_info_error is not None:
        raise cell_error(outcome.response_info_error, tracebacks=tracebacks, what="the ResponseInfo cell")
    status: int | None = None
    headers: list[tuple[str, str]] = []
    if outcome.response_info_stdout is not None:
        status, headers = parse_response_info(outcome.response_info_stdout)

    content_type = None  # set by the ResponseInfo cell: sent exactly as the cell wrote it
    for name, value in headers:
        if name.lower() == "content-type":
            content_type = value
        else:
            resp.append_header(name, value)
    declared = (content_type or "text/plain").split(";", 1)[0].strip().lower()

    body: bytes
    rich = _bundle_with(outcome.outputs, declared) if content_type is not None and declared != "text/plain" else None
    if rich is not None:
        body = _rich_body(rich, declared)
    elif cell.stdout:
        body = cell.stdout.encode()
    else:
        body = b""
        preferred = _preferred(req, outcome.outputs)
        if preferred is not None:
            body, content_type = (
                _rich_body(_bundle_with(outcome.outputs, preferred), preferred),
                with_charset(preferred),
            )
        elif cell.execute_result is not None:
            body = json.dumps(cell.execute_result).encode()

    resp.status = falcon.code_to_http_status(status or 200)
    if (status or 200) in _NO_BODY:
        resp.data = b""
        return
    resp.content_type = content_type or with_charset("text/plain")
    resp.data = body
