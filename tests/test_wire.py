"""Large kernel messages decode exactly as json.loads would, in slices."""

from __future__ import annotations

import json

import pytest
from jupyter_client.session import Session

from fngw.kernels.wire import CHUNK, LARGE, deserialize_cooperatively, loads_cooperatively

TRICKY = [
    "x" * (LARGE + 7),
    ('ab\\"c\n\t\u00e9\u4e2d\U0001f600' * (LARGE // 8)),  # escapes, 2-, 3- and 4-byte UTF-8
    "\\" * (CHUNK * 3 + 1),  # an escape at every slice boundary
    "\u2028\x00\x1f" * (LARGE // 2),  # control characters escaped as \\uXXXX
]


@pytest.mark.parametrize("text", TRICKY, ids=["plain", "mixed", "backslashes", "controls"])
@pytest.mark.parametrize("ascii_only", [False, True])
def test_large_documents_decode_exactly(text, ascii_only):
    doc = {"name": "stdout", "text": text, "list": [text[:100], {"nested": text}], "n": 1, "q": '"quoted"'}
    raw = json.dumps(doc, ensure_ascii=ascii_only).encode()
    assert loads_cooperatively(raw) == doc


def test_small_documents_take_the_plain_path():
    assert loads_cooperatively(b'{"a": [1, "b"]}') == {"a": [1, "b"]}


def test_large_signed_messages_are_verified():
    session = Session(key=b"secret")
    msg = session.msg("stream", {"name": "stdout", "text": "y" * (LARGE * 2)})
    _, frames = session.feed_identities(session.serialize(msg))
    decoded = deserialize_cooperatively(session, frames)
    assert decoded["content"] == msg["content"] and decoded["msg_type"] == "stream"
    forged = list(frames)
    forged[4] = forged[4].replace(b"yyy", b"zzz", 1)
    with pytest.raises(ValueError, match="Signature"):
        deserialize_cooperatively(session, forged)


def _signed(session, msg_type="stream", content=None):
    msg = session.msg(msg_type, content or {"name": "stdout", "text": "hi"})
    return session.serialize(msg)


def test_every_message_is_checked_as_jupyter_client_checks_it():
    session = Session(key=b"secret", signature_scheme="hmac-sha256")
    frames = _signed(session)[1:]  # after the delimiter, as feed_identities leaves them
    msg = deserialize_cooperatively(session, frames)
    assert msg["content"] == {"name": "stdout", "text": "hi"} and msg["msg_type"] == "stream"
    assert isinstance(msg["header"]["date"], str)  # kept as the kernel wrote it
    with pytest.raises(ValueError, match="Duplicate"):  # the same signature again: a replay
        deserialize_cooperatively(session, frames)
    forged = _signed(session)[1:]
    forged[4] = b'{"name": "stdout", "text": "forged"}'
    with pytest.raises(ValueError, match="Invalid Signature"):
        deserialize_cooperatively(session, forged)
    unsigned = _signed(session)[1:]
    unsigned[0] = b""
    with pytest.raises(ValueError, match="Unsigned"):
        deserialize_cooperatively(session, unsigned)
    large = _signed(session, content={"name": "stdout", "text": "x" * (1 << 20)})[1:]
    large[4] = large[4].replace(b"xxxx", b"yyyy", 1)
    with pytest.raises(ValueError, match="Invalid Signature"):  # the thread-pool path checks too
        deserialize_cooperatively(session, large)


def test_the_reader_drops_and_counts_a_forged_message_and_reads_on():
    import zmq

    from fngw.kernels.channels import KernelChannels

    session = Session(key=b"secret", signature_scheme="hmac-sha256")
    good = session.serialize(session.msg("status", {"execution_state": "idle"}))
    forged = session.serialize(session.msg("status", {"execution_state": "busy"}))
    forged[-1] = b'{"execution_state": "forged"}'

    class Socket:
        frames = [forged, good]

        def recv_multipart(self, copy=True):
            if not self.frames:
                raise zmq.ZMQError()  # closed: the reader ends
            return self.frames.pop(0)

    channels = KernelChannels.__new__(KernelChannels)  # sockets of our own, no kernel
    channels.sockets, channels.session = {"iopub": Socket()}, session
    drops: list[int] = []
    channels.on_drop = lambda: drops.append(1)
    routed: list[dict] = []
    channels._read("iopub", lambda channel, msg: routed.append(msg))
    assert drops == [1] and [msg["content"] for msg in routed] == [{"execution_state": "idle"}]
