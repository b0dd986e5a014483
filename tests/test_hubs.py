"""Channel hub bookkeeping: what a disconnected session keeps, and for how long."""

from __future__ import annotations

from types import SimpleNamespace

from fngw.kernel_api import hubs
from fngw.kernel_api.framing import decode_legacy, decode_v1, encode_legacy, encode_v1
from fngw.kernel_api.hubs import ChannelHub


class FakeKernel:
    def on_iopub(self, listener):
        self.iopub = listener

    def on_message(self, listener):
        self.message = listener


class FakeSocket:
    def __init__(self, session_id):
        self.session_id = session_id
        self.sent = []

    def send(self, channel, msg, encoded=None):
        self.sent.append((channel, msg))

    def close(self, code=1000, reason=""):
        pass


def make_hub():
    entry = SimpleNamespace(kernel=FakeKernel(), connections=0, status_listeners=[], touch=lambda: None)
    return ChannelHub(entry), entry


def status(n):
    return {
        "header": {"msg_id": f"m{n}", "msg_type": "status"},
        "parent_header": {},
        "metadata": {},
        "content": {"execution_state": "idle"},
    }


def test_a_reconnecting_session_gets_what_it_missed():
    hub, entry = make_hub()
    first = FakeSocket("s1")
    hub.attach(first)
    hub.detach(first)
    entry.kernel.iopub(None, status(1))
    again = FakeSocket("s1")
    hub.attach(again)
    assert [m["header"]["msg_id"] for _, m in again.sent] == ["m1"]


def test_sessions_that_do_not_come_back_stop_collecting(monkeypatch):
    hub, entry = make_hub()
    for i in range(50):
        ws = FakeSocket(f"s{i}")
        hub.attach(ws)
        hub.detach(ws)
    assert len(hub.offline) == hubs.REPLAY_SESSIONS
    later = hubs.time.monotonic() + hubs.REPLAY_SECONDS + 1
    monkeypatch.setattr(hubs.time, "monotonic", lambda: later)
    entry.kernel.iopub(None, status(2))
    assert hub.offline == {}


def test_framings_round_trip_with_buffers():
    msg = {
        "header": {"msg_id": "a", "msg_type": "comm_msg"},
        "parent_header": {},
        "metadata": {},
        "content": {"x": 1},
        "buffers": [b"\x00\x01", b"zz"],
    }
    binary, payload = encode_legacy(msg, "shell")
    assert binary
    decoded = decode_legacy(payload)
    assert decoded["content"] == {"x": 1} and decoded["buffers"] == [b"\x00\x01", b"zz"]
    v1 = decode_v1(encode_v1(msg, "iopub"))
    assert v1["channel"] == "iopub" and v1["buffers"] == [b"\x00\x01", b"zz"] and v1["header"]["msg_id"] == "a"
