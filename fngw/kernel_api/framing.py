"""Jupyter kernel messages on a websocket: the two framings Jupyter Server speaks.

- legacy: a JSON text frame with a ``channel`` field, or, for a message with buffers, a binary
  frame: ``count`` (u32 big-endian), ``count`` offsets (u32), then the JSON and the buffers;
- ``v1.kernel.websocket.jupyter.org``: a binary frame: the number of offsets (u64 little-endian),
  the offsets (u64), then the channel name, header, parent header, metadata, content and buffers.

Decoders raise ``ValueError`` (or ``struct.error``/``IndexError``) for malformed input.
"""

from __future__ import annotations

import json
import struct
from typing import Any, cast

from jupyter_client.jsonutil import json_default

from fngw.kernels.protocol import Message

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=json_default).encode()


def encode_legacy(msg: Message, channel: str) -> tuple[bool, bytes]:
    """(is_binary, payload) in the legacy framing."""
    body = {key: msg.get(key, {}) for key in ("header", "parent_header", "metadata", "content")}
    body.update(channel=channel, msg_id=msg["header"].get("msg_id"), msg_type=msg["header"].get("msg_type"))
    buffers = [bytes(b) for b in msg.get("buffers") or ()]
    if not buffers:
        body["buffers"] = []
        return False, _dumps(body)
    parts = [_dumps(body), *buffers]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return True, struct.pack("!" + "I" * (len(parts) + 1), len(parts), *offsets) + b"".join(parts)


def decode_legacy(data: bytes | str) -> Message:
    """A message from the legacy framing (a JSON text frame, or a binary frame with buffers)."""
    if isinstance(data, str):
        msg = json.loads(data)
        if not isinstance(msg, dict):
            raise ValueError("a message must be a JSON object")
        msg.setdefault("buffers", [])
        return cast(Message, msg)
    (count,) = struct.unpack("!I", data[:4])
    offsets = list(struct.unpack("!" + "I" * count, data[4 : 4 * (count + 1)])) + [len(data)]
    parts = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    msg = json.loads(parts[0])
    if not isinstance(msg, dict):
        raise ValueError("a message must be a JSON object")
    msg["buffers"] = parts[1:]
    return cast(Message, msg)


def encode_v1(msg: Message, channel: str) -> bytes:
    """A message in the v1.kernel.websocket.jupyter.org framing."""
    parts = [_dumps(msg.get(k, {})) for k in ("header", "parent_header", "metadata", "content")]
    parts += [bytes(b) for b in msg.get("buffers") or ()]
    name = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(name))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + name + b"".join(parts)


def decode_v1(data: bytes) -> Message:
    """A message (with its channel) from the v1 framing."""
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    channel = data[offsets[0] : offsets[1]].decode()
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    if len(parts) < 4:
        raise ValueError("a v1 message needs header, parent_header, metadata and content")
    header, parent, metadata, content = (json.loads(p) for p in parts[:4])
    return {
        "channel": channel,
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
        "buffers": parts[4:],
    }
