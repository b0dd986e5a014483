"""Channel hub bookkeeping: what a disconnected session keeps, and for how long."""

from __future__ import annotations

from types import SimpleNamespace

import gevent
from wsproto.connection import Connection, ConnectionType

from fngw.kernel_api import channels
from fngw.kernel_api.channels import ChannelHub, decode_legacy, decode_v1, encode_legacy, encode_v1


class FakeKernel:
    def on_iopub(self, listener):
        self.iopub = listener

    def on_message(self, listener):
        self.message = listener

    def send_message(self, channel, msg):
        pass


class FakeSocket:
    def __init__(self, session_id, v1=False):
        self.session_id = session_id
        self.v1 = v1
        self.iopub_next = 0
        self.sent = []
        self.wire = Connection(ConnectionType.CLIENT)  # reads back what the hub framed

    def send(self, channel, msg):
        self.sent.append((channel, msg))

    def send_frames(self, data):
        self.wire.receive_data(data)
        for event in self.wire.events():
            msg = decode_v1(event.data) if self.v1 else decode_legacy(event.data)
            self.sent.append((msg["channel"], msg))

    def close(self, code=1000, reason=""):
        pass


def make_hub():
    entry = SimpleNamespace(kernel=FakeKernel(), connections=0, status_listeners=[], touch=lambda: None)
    return ChannelHub(entry), entry


def status(n, parent=None):
    return {
        "header": {"msg_id": f"m{n}", "msg_type": "status"},
        "parent_header": {"msg_id": parent} if parent else {},
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
    assert len(hub.offline) == channels.REPLAY_SESSIONS
    later = channels.time.monotonic() + channels.REPLAY_SECONDS + 1
    monkeypatch.setattr(channels.time, "monotonic", lambda: later)
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


def ids(ws):
    return [m["header"]["msg_id"] for _, m in ws.sent]


def test_the_requesting_client_gets_its_output_first_and_everyone_keeps_kernel_order():
    hub, entry = make_hub()
    asker, watcher, v1_watcher = FakeSocket("a"), FakeSocket("w"), FakeSocket("v", v1=True)
    for ws in (asker, watcher, v1_watcher):
        hub.attach(ws)
    hub.from_client(asker, {"header": {"msg_id": "req", "msg_type": "execute_request"}})
    entry.kernel.iopub(None, status(1))  # someone else's output, before the asker's
    entry.kernel.iopub(None, status(2, parent="req"))
    assert ids(asker) == ["m1", "m2"]  # at once, without waiting for the broadcast
    assert ids(watcher) == []
    for _ in range(1000):  # the broadcaster runs when the loop is idle
        if ids(watcher) and ids(v1_watcher):
            break
        gevent.idle()
    assert ids(watcher) == ids(v1_watcher) == ["m1", "m2"]
    assert ids(asker) == ["m1", "m2"]  # nothing twice
    assert hub.log == []  # delivered everywhere: the log is trimmed


def test_a_connection_that_closes_stops_the_broadcaster_and_the_hub_keeps_nothing():
    hub, entry = make_hub()
    ws = FakeSocket("a")
    hub.attach(ws)
    entry.kernel.iopub(None, status(1))
    broadcaster = hub.broadcaster
    hub.detach(ws)
    broadcaster.join(timeout=5)
    assert hub.broadcaster is None and hub.log == []
