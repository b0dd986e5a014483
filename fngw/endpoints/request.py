"""The ``REQUEST`` document a cell sees: ``{"body", "args", "path", "headers"}``.

As in Kernel Gateway: ``args`` maps each query name to a list of strings; ``body`` is parsed by
Content-Type. Differences, all fixes: ``application/json`` with parameters (``; charset=utf-8``) is
parsed too; a JSON body that does not parse, or a text body that is not UTF-8, is a 400 instead of
a silent fallback or an empty 200; uploaded files are kept as ``{filename, content_type, data}``
with base64 ``data`` instead of being dropped.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any
from urllib.parse import parse_qs

import falcon
from falcon.media import MultipartFormHandler

from fngw.server.errors import GatewayError

_MULTIPART = MultipartFormHandler()


def bad_request(message: str) -> GatewayError:
    return GatewayError(falcon.HTTP_400, "Bad Request", message)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"{what} is not valid UTF-8 (byte {exc.start})") from None


def parse_body(req: falcon.Request, data: bytes) -> Any:
    if not data:
        return ""
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        text = _text(data, "the JSON body")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise bad_request(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise bad_request("the JSON body is nested too deeply") from None
    if media_type == "application/x-www-form-urlencoded":
        return parse_qs(_text(data, "the form body"), keep_blank_values=True)
    if media_type == "multipart/form-data":
        return _multipart(req, data)
    return _text(data, "the request body")


def _multipart(req: falcon.Request, data: bytes) -> dict[str, list[Any]]:
    fields: dict[str, list[Any]] = {}
    try:
        form = _MULTIPART.deserialize(io.BytesIO(data), req.content_type, len(data))
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
    except GatewayError:
        raise
    except Exception as exc:  # falcon's MultipartParseError and friends
        raise bad_request(f"the multipart body cannot be parsed: {getattr(exc, 'description', None) or exc}") from None
    return fields


def query_args(req: falcon.Request) -> dict[str, list[str]]:
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
    raw = req.env.get("fngw.raw_headers")
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


def request_document(req: falcon.Request, body: bytes, path_params: dict[str, str]) -> dict[str, Any]:
    return {
        "body": parse_body(req, body),
        "args": query_args(req),
        "path": path_params,
        "headers": header_dict(req),
    }
