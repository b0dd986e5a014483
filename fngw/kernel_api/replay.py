"""What a disconnected websocket session missed, kept for when it comes back, within bounds."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from fngw.kernels.protocol import Message

REPLAY_LIMIT = 10_000  # messages kept for a disconnected session


def message_size(msg: Message) -> int:
    """Roughly the bytes ``msg`` takes once framed: its output text and data, its buffers, and a
    kilobyte for the rest (headers). Cheap: a broadcast must not serialise a message to size it."""
    content = msg.get("content") or {}
    size = 1024 + sum(len(b) for b in msg.get("buffers") or ())
    text = content.get("text")
    if isinstance(text, str):
        size += len(text)
    data = content.get("data")
    if isinstance(data, dict):
        size += sum(len(v) if isinstance(v, str) else 1024 for v in data.values())
    return size


class ReplayBuffer:
    """What a disconnected session missed, bounded by ``REPLAY_LIMIT`` messages and ``max_bytes``
    (a client that never comes back must not hold the kernel's output): past them the oldest iopub
    message goes first, and replies only when no iopub message is left."""

    def __init__(self, max_bytes: int):
        self.since = time.monotonic()
        self.max_bytes = max_bytes
        self.messages: deque[tuple[str, Message, int]] = deque()
        self.size = 0
        self.dropped = 0

    def append(self, channel: str, msg: Message) -> None:
        """Keep msg for channel, evicting older output past the bounds."""
        size = message_size(msg)
        self.messages.append((channel, msg, size))
        self.size += size
        while self.messages and (self.size > self.max_bytes or len(self.messages) > REPLAY_LIMIT):
            self._evict()

    def _evict(self) -> None:
        """Drop the oldest iopub message; replies (small, and what a client waits for) go last."""
        index = next((i for i, (channel, _, _) in enumerate(self.messages) if channel == "iopub"), 0)
        _, _, size = self.messages[index]
        del self.messages[index]
        self.size -= size
        self.dropped += 1

    def __iter__(self) -> Iterator[tuple[str, Message]]:
        return ((channel, msg) for channel, msg, _ in self.messages)
