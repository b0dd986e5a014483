"""The ``REQUEST`` document a cell sees: ``{"body", "args", "path", "headers"}``.

As in Kernel Gateway: ``args`` maps each query name to a list of strings; ``body`` is parsed by
Content-Type. Differences, all fixes: ``application/json`` with parameters (``; charset=utf-8``) is
parsed too; a JSON body that does not parse, or a text body that is not UTF-8, is a 400 instead of
a silent fallback or an empty 200; uploaded files are kept as ``{filename, content_type, data}``
with base64 ``data`` instead of being dropped.
"""

from __future__ import annotations

import base64
import functools
import io
import json
from typing import Any
from urllib.parse import parse_qs

import falcon
from falcon.media import MultipartFormHandler
from falcon.media.multipart import MultipartParseOptions

from fngw.contracts import media_type as parsed_media_type
from fngw.http.environ import RAW_HEADERS

from .errors import RequestInvalid, RequestTooLarge

DEFAULT_MAX_BODY = 10 * 1000**2
MIN_FORM_PARTS = 1000
BYTES_PER_FORM_PART = 1024  # the part-count limit grows with max_body: one part per KiB
MAX_PART_HEADERS = 8192  # bytes of headers one form part may carry (falcon's default)


def bad_request(message: str) -> RequestInvalid:
    """RequestInvalid with message (a 400)."""
    return RequestInvalid(message)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"{what} is not valid UTF-8 (byte {exc.start})") from None


def _not_json(name: str) -> Any:
    """NaN, Infinity and -Infinity: Python's json reads them, but they are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def form_part_limit(max_body: int) -> int:
    """How many parts a multipart form may have under ``max_body`` bytes: one per KiB of
    ``max_body``, at least ``MIN_FORM_PARTS`` (10,000 for a 10 MB ``max_body``). The body's size is
    already bounded; this bounds the per-part objects parsing makes of tiny parts."""
    return max(MIN_FORM_PARTS, max_body // BYTES_PER_FORM_PART)


@functools.lru_cache(maxsize=8)  # one per max_body in use: not rebuilt on every request
def _form_handler(max_body: int) -> MultipartFormHandler:
    options = MultipartParseOptions()
    options.max_body_part_buffer_size = max_body  # one part may be the whole body
    options.max_body_part_count = form_part_limit(max_body)
    options.max_body_part_headers_size = MAX_PART_HEADERS
    return MultipartFormHandler(parse_options=options)


def parse_body(req: falcon.Request, data: bytes, max_body: int = DEFAULT_MAX_BODY) -> Any:
    """The ``body`` of ``REQUEST``, parsed by Content-Type: JSON, a urlencoded form (name -> list of
    strings), a multipart form (name -> list of strings or ``{filename, content_type, data}`` with
    base64 ``data``), else UTF-8 text. ``max_body`` (bytes) sets the multipart limits. Raises
    ``RequestInvalid`` for a body that does not parse, ``RequestTooLarge`` for a form over its part
    limits."""
    if not data:
        return ""
    media_type = parsed_media_type(req.content_type) or ""
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        text = _text(data, "the JSON body")
        try:
            return json.loads(text, parse_constant=_not_json)
        except ValueError as exc:
            raise bad_request(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise bad_request("the JSON body is nested too deeply") from None
    if media_type == "application/x-www-form-urlencoded":
        return parse_qs(_text(data, "the form body"), keep_blank_values=True)
    if media_type == "multipart/form-data":
        return _multipart(req, data, max_body)
    return _text(data, "the request body")


def _multipart(req: falcon.Request, data: bytes, max_body: int) -> dict[str, list[Any]]:
    fields: dict[str, list[Any]] = {}
    try:
        form = _form_handler(max_body).deserialize(io.BytesIO(data), req.content_type, len(data))
        for part in form:
            content = part.get_data()
            if part.filename is not None:
                value: Any = {
                    "filename": part.filename,
                    "content_type": part.content_type,
                    "data": base64.b64encode(content).decode("ascii"),
                }
            else:
                value = _text(content, f"form field {part.name!r}")
            fields.setdefault(part.name or "", []).append(value)
    except RequestInvalid:
        raise
    except Exception as exc:  # falcon's MultipartParseError and friends
        description = str(getattr(exc, "description", None) or "")
        if "number of form body parts" in description:
            limit = form_part_limit(max_body)
            raise RequestTooLarge(
                f"the form has more than {limit} parts, the limit for server.max_body {max_body} "
                f"(one part per {BYTES_PER_FORM_PART} bytes, at least {MIN_FORM_PARTS})"
            ) from None
        if "body part headers" in description:
            raise bad_request(f"a form part's headers are incomplete or larger than {MAX_PART_HEADERS} bytes") from None
        raise bad_request(f"the multipart body cannot be parsed: {getattr(exc, 'description', None) or exc}") from None
    return fields


def query_args(req: falcon.Request) -> dict[str, list[str]]:
    """The query string as Kernel Gateway's args: each name to a list of strings. RequestInvalid when
    it is not UTF-8."""
    try:
        return parse_qs(req.query_string, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise bad_request("the query string is not valid UTF-8") from None


def _capitalize(name: str) -> str:
    return "-".join(p.capitalize() for p in name.split("-"))


def header_dict(req: falcon.Request) -> dict[str, str | list[str]]:
    """Request headers with their usual capitalisation (``Content-Type``); a header sent several
    times is a list. Under fngw's gunicorn worker the header list is exact; elsewhere the WSGI
    server has already joined repeated headers with commas."""
    raw = req.env.get(RAW_HEADERS)
    if raw is None:
        return {_capitalize(name): value for name, value in req.headers.items()}
    headers: dict[str, str | list[str]] = {}
    for name, value in raw:
        key = _capitalize(name)
        if key in headers:
            previous = headers[key]
            headers[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            headers[key] = value
    return headers


def with_trace_headers(headers: dict[str, Any], trace: dict[str, str]) -> dict[str, Any]:
    """``headers`` (of ``header_dict``) with the client's W3C trace headers replaced by ``trace``'s
    (``Traceparent``, ``Tracestate``): the cell continues the gateway's span, not the client's."""
    kept = {name: value for name, value in headers.items() if name.lower() not in ("traceparent", "tracestate")}
    kept.update({_capitalize(name): value for name, value in trace.items()})
    return kept


def request_document(
    req: falcon.Request, body: bytes, path_params: dict[str, str], max_body: int = DEFAULT_MAX_BODY
) -> dict[str, Any]:
    """``REQUEST`` as Kernel Gateway defines it: ``{"body", "args", "path", "headers"}``."""
    return {
        "body": parse_body(req, body, max_body),
        "args": query_args(req),
        "path": path_params,
        "headers": header_dict(req),
    }
