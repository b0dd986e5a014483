"""Decoding kernel messages without holding the gevent hub.

A cell that prints 10 MB produces one stream message with a 10 MB JSON string in it; ``json.loads``
of that takes ~30 ms with the GIL held, and every other request of the worker waits. Here, content
larger than ``LARGE`` is decoded in pieces: its long string literals are lifted out, the small
remainder is parsed at once, and each long string is decoded in ``CHUNK``-sized slices with a yield
to the hub between slices. The result is exactly ``json.loads(raw)``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any, cast

import gevent
from jupyter_client.adapter import adapt
from jupyter_client.session import Session

from .protocol import Message

LARGE = 512 * 1024  # content frames below this are parsed in one go
LONG_STRING = 64 * 1024  # string literals above this are lifted out and decoded in slices
CHUNK = 128 * 1024  # bytes of a long string decoded between two yields
_QUOTE, _BACKSLASH = b'"', b"\\"


def loads_cooperatively(raw: bytes | memoryview) -> Any:
    """``json.loads(raw)``, yielding to the gevent hub while decoding large documents."""
    if len(raw) < LARGE:
        return json.loads(bytes(raw) if isinstance(raw, memoryview) else raw)
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    gevent.sleep(0)
    view = memoryview(raw)  # slices of a view copy nothing
    nonce = secrets.token_hex(8)
    skeleton: list[bytes] = []
    lifted: dict[str, memoryview] = {}
    pos = 0
    scanned = 0
    while True:
        start = raw.find(_QUOTE, pos)
        if start < 0:
            break
        end = _closing_quote(raw, start)
        if end - start > LONG_STRING:
            key = f"fngw-{nonce}-{len(lifted)}"
            lifted[key] = view[start + 1 : end]
            skeleton.append(raw[pos:start])
            skeleton.append(json.dumps(key).encode())
        else:
            skeleton.append(raw[pos : end + 1])
        pos = end + 1
        scanned += 1
        if scanned % 2000 == 0:
            gevent.sleep(0)
    skeleton.append(raw[pos:])
    document = json.loads(b"".join(skeleton))
    if not lifted:
        return document
    decoded = {key: _decode_string(body) for key, body in lifted.items()}
    gevent.sleep(0)
    return _substitute(document, decoded)


def _closing_quote(raw: bytes, start: int) -> int:
    """Index of the quote that closes the string literal opening at ``start``."""
    pos = start + 1
    while True:
        end = raw.find(_QUOTE, pos)
        if end < 0:
            raise ValueError("unterminated string in JSON")
        backslashes = 0
        while raw[end - 1 - backslashes] == 0x5C:  # an odd run of backslashes escapes the quote
            backslashes += 1
        if backslashes % 2 == 0:
            return end
        pos = end + 1


def _decode_string(body: memoryview) -> str:
    """Decode a JSON string literal's body in slices, yielding between slices."""
    parts = []
    pos = 0
    while pos < len(body):
        cut = min(pos + CHUNK, len(body))
        # Step back until the slice ends on a boundary: not inside an escape sequence or a
        # multi-byte UTF-8 character (both make the slice invalid on its own).
        # A slice must not end between the two escapes of a surrogate pair either: json.loads
        # accepts a lone surrogate, which would then not pair up with its other half.
        while True:
            try:
                part = json.loads(b"".join((_QUOTE, body[pos:cut], _QUOTE)))
            except (ValueError, UnicodeDecodeError):
                part = None
            if part is not None and (cut == len(body) or not part or not 0xD800 <= ord(part[-1]) <= 0xDBFF):
                parts.append(part)
                break
            if cut == len(body) or cut - pos <= 12:
                raise ValueError("invalid JSON string")
            cut -= 1
        pos = cut
        gevent.sleep(0)
    return "".join(parts)


def _substitute(value: Any, decoded: dict[str, str]) -> Any:
    if isinstance(value, str):
        return decoded.get(value, value)
    if isinstance(value, dict):
        return {_substitute(k, decoded): _substitute(v, decoded) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, decoded) for v in value]
    return value


def deserialize_cooperatively(session: Session, frames: list[bytes]) -> Message:
    """``session.deserialize(frames)`` for a message whose frames follow ``feed_identities``, with
    the same checks and less work.

    The same checks: an unsigned message, a signature seen before (a replay) and a signature that
    does not match raise ``ValueError``, as jupyter_client's do. Less work: header dates stay the
    strings the kernel sent (jupyter_client parses every one into a ``datetime``, which the gateway
    never reads and then writes back as text: a sixth of a small message's decoding). Messages of
    an older protocol are adapted as jupyter_client adapts them.

    Large messages are checked and decoded without holding the hub: the signature is computed in
    gevent's thread pool (hashlib releases the GIL on large inputs) and the content is decoded
    with ``loads_cooperatively``."""
    if len(frames) < 5:
        raise ValueError(f"malformed message: {len(frames)} frames, at least 5 expected")
    large = len(frames[4]) >= LARGE
    if session.auth is not None:
        signature = frames[0]
        if not signature:
            raise ValueError("Unsigned Message")
        if signature in session.digest_history:
            raise ValueError("Duplicate Signature")
        session._add_digest(signature)  # the replay history jupyter_client keeps
        sign = session.sign
        check = gevent.get_hub().threadpool.apply(sign, (frames[1:5],)) if large else sign(frames[1:5])
        if not hmac.compare_digest(signature, check):
            raise ValueError("Invalid Signature")
    header = session.unpack(frames[1])
    message: Message = {
        "header": header,
        "msg_id": header["msg_id"],
        "msg_type": header["msg_type"],
        "parent_header": session.unpack(frames[2]),
        "metadata": session.unpack(frames[3]),
        "content": loads_cooperatively(frames[4]) if large else session.unpack(frames[4]),
        "buffers": [memoryview(b) for b in frames[5:]],
    }
    if str(header.get("version", "5")).split(".")[0] != "5":  # an older kernel: jupyter_client's adapter
        return cast(Message, adapt(cast(dict[str, Any], message)))
    return message
