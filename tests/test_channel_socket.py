"""``ChannelSocket``: libzmq's edge-triggered descriptor, shared by a reader and a sender, never
leaves either waiting for good (a reader can take the edge that frees a blocked sender, and a
sender the one that announces a message)."""

from __future__ import annotations

import threading
import time

import gevent
import zmq

from fngw.kernels.channels import ChannelSocket, _context


def peer(address: str, received: list[int]) -> None:
    """A kernel that does not read for a moment (the dealer's queue fills), sends one message, then
    reads everything: in a thread of its own, with plain blocking zmq."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.rcvhwm, router.sndhwm, router.linger, router.rcvtimeo = 1, 1000, 0, 3000
    router.bind(address)
    time.sleep(1.0)
    router.send_multipart([b"d", b"R1"])
    time.sleep(0.03)
    try:
        while True:
            router.recv_multipart()
            received[0] += 1
    except zmq.Again:
        pass
    router.close()
    context.term()


def test_a_blocked_sender_is_woken_when_the_reader_took_its_edge(tmp_path):
    address = f"ipc://{tmp_path}/peer"
    received = [0]
    thread = threading.Thread(target=peer, args=(address, received))
    thread.start()
    time.sleep(0.2)
    sock = _context().socket(zmq.DEALER)
    sock.sndhwm, sock.identity, sock.linger = 1, b"d", 0
    sock.connect(address)
    channel = ChannelSocket(sock)
    sent = [0]

    def sender() -> None:
        for _ in range(20):
            channel.send_multipart([b"x" * (1 << 20)])
            sent[0] += 1

    def reader() -> None:
        assert channel.recv_multipart() == [b"R1"]
        busy_until = time.monotonic() + 0.2  # the worker is busy a moment, without yielding
        while time.monotonic() < busy_until:
            pass
        channel.recv_multipart()  # waits for a message that never comes: killed below

    sending = gevent.spawn(sender)
    gevent.sleep(0.1)  # the sender is blocked on the full queue first
    reading = gevent.spawn(reader)
    try:
        sending.join(timeout=8)
        assert sending.dead and sent[0] == 20
    finally:
        reading.kill()
        thread.join(10)
        channel.close()
    assert received[0] == 20
