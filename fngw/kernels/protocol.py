"""The shapes of Jupyter messages as fngw handles them (jupyter_client's ``Session.deserialize``
output; see the Jupyter messaging specification, version 5.x)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:  # typing has it from Python 3.11; fngw runs on 3.10 too
    from typing_extensions import NotRequired


class Header(TypedDict):
    """A message header: ``date`` is ISO 8601 text on the wire, a ``datetime`` once parsed."""

    msg_id: str
    session: str
    username: str
    date: str | datetime
    msg_type: str
    version: str


class Message(TypedDict):
    """One Jupyter message. ``parent_header`` is ``{}`` when the message answers nothing;
    ``content`` is the message type's own shape (``execute_request``, ``stream``, ...);
    ``msg_id``/``msg_type`` repeat the header's, as jupyter_client adds them."""

    header: Header
    parent_header: Header | dict[str, Any]
    metadata: dict[str, Any]
    content: dict[str, Any]
    buffers: NotRequired[list[Any]]  # bytes or memoryview: binary parts after the content
    msg_id: NotRequired[str]
    msg_type: NotRequired[str]
    channel: NotRequired[str]  # in the kernel API's websocket JSON frames
