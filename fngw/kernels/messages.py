"""What a request to a kernel produces: results, errors, and the collectors that gather them.

A ``PendingRequest`` waits for its reply and, unless ``reply_only``, for the iopub ``idle`` status
that follows; a ``PendingExecution`` also gathers what an ``execute_request`` produced, in the order
the kernel sent it, up to a limit of output. The channels route every message to its collector by
``parent_header.msg_id``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import gevent
import gevent.event

from .errors import ExecutionTimeout, KernelError, OutputLimitExceeded
from .protocol import Message

KernelState = Literal["new", "starting", "idle", "busy", "restarting", "dead", "stopping", "stopped"]
"""Where a ``Kernel`` is in its life: ``dead`` died unasked, ``stopped`` was shut down or let go."""


@dataclass(frozen=True)
class SeedCell:
    """A code cell run on every start and restart; ``index`` is its position in the notebook.
    ``silent`` cells (fngw's own preludes) are not announced to clients (no ``execute_input``)."""

    index: int
    source: str
    silent: bool = False


@dataclass
class ExecutionError:
    """A cell's error as the kernel reported it (an ``error`` message or an error reply)."""

    ename: str
    evalue: str
    traceback: list[str]

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> ExecutionError:
        """From the content of an ``error`` iopub message or an ``execute_reply`` with status error."""
        return cls(content.get("ename", ""), content.get("evalue", ""), list(content.get("traceback", [])))


@dataclass
class ExecutionResult:
    """What one ``execute_request`` produced, in the order the kernel sent it."""

    status: str = "ok"  # "ok", "error" or "aborted"
    stdout: str = ""
    stderr: str = ""
    # display_data and execute_result bundles: {"type", "data", "metadata"}
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execute_result: dict[str, Any] | None = None
    error: ExecutionError | None = None
    execution_count: int | None = None
    duration: float = 0.0  # seconds from sending the request to its reply and idle status
    # The reply's payloads (``{"source": "ask_exit", ...}`` when the cell called ``exit()``).
    payload: list[dict[str, Any]] = field(default_factory=list)
    msg_id: str = ""  # the execute_request's header msg_id (Jupyter messaging)

    @property
    def ok(self) -> bool:
        """The execution finished without error."""
        return self.status == "ok"


class PendingRequest:
    """A request waiting for its reply and, unless ``reply_only``, its iopub ``idle``."""

    def __init__(self, msg_id: str, reply_only: bool = False):
        self.msg_id = msg_id
        self.reply: Message | None = None
        self.idle = reply_only
        self.done = gevent.event.AsyncResult()
        self.interrupted = False  # the kernel was interrupted while this request was pending
        self.waiting_for_reply: gevent.Greenlet | None = None  # idle came first: see Kernel._route

    @property
    def replyless(self) -> bool:
        """Idle came, the reply has not (yet: it travels on another socket, so it may come second)."""
        return self.idle and self.reply is None and not self.done.ready()

    def on_reply(self, msg: Message) -> None:
        """The shell or control reply arrived."""
        self.reply = msg
        self._maybe_done()

    def on_iopub(self, msg: Message) -> None:
        """An iopub message for this request arrived (its idle status completes it)."""
        if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
            self.idle = True
            self._maybe_done()

    def _maybe_done(self) -> None:
        if self.reply is not None and self.idle and not self.done.ready():
            self.done.set(self.reply)

    def fail(self, error: KernelError) -> None:
        """End the wait with error (the kernel died, restarted or was stopped)."""
        if not self.done.ready():
            self.done.set_exception(error)


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    """``text`` without the colour escapes IPython puts in tracebacks."""
    return ANSI_COLOUR.sub("", text)


def output_size(data: Mapping[str, Any]) -> int:
    """Roughly the bytes a mime bundle holds (strings by length, anything else as JSON)."""
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v, default=str)) for v in data.values())


OUTPUT_TYPES = frozenset({"stream", "display_data", "execute_result", "error", "clear_output"})
"""The iopub messages that carry what a cell outputs (what ``on_output`` listeners get)."""


class PendingExecution(PendingRequest):
    """Gathers what one execute_request produced: streams, display data, the result and errors, up to
    max_output characters. With ``on_output``, each output message (``OUTPUT_TYPES``) is also handed
    on as it arrives, from the kernel's reader greenlet (the listener must not block); with
    ``keep=False`` stream text and displays are not kept (a stream's output lives in the listener)."""

    def __init__(
        self,
        msg_id: str,
        max_output: int | None = None,
        on_output: Callable[[Message], None] | None = None,
        keep: bool = True,
    ):
        super().__init__(msg_id)
        self.on_output = on_output
        self.keep = keep
        self.result = ExecutionResult(msg_id=msg_id)
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self.sent_at = time.monotonic()
        self.max_output = max_output
        self.collected = 0  # characters of output kept so far
        self.overflow = gevent.event.Event()  # set once more than max_output arrived

    def _keep(self, size: int) -> bool:
        """Count ``size`` more characters of output; False once past ``max_output`` (from then on
        output is dropped and what was kept is freed: the caller gets an error, not a body)."""
        if self.overflow.is_set():
            return False
        self.collected += size
        if self.max_output is not None and self.collected > self.max_output:
            self._stdout.clear()
            self._stderr.clear()
            self.result.outputs.clear()
            self.result.execute_result = None
            self.overflow.set()
            return False
        return True

    def on_iopub(self, msg: Message) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        if self.on_output is not None and kind in OUTPUT_TYPES:
            self.on_output(msg)
        if not self.keep and kind != "error":
            pass  # handed on above, and not kept
        elif kind in ("stream", "display_data", "execute_result") and not self._keep(
            len(content.get("text", "")) if kind == "stream" else output_size(content.get("data", {}))
        ):
            pass  # over the limit: dropped
        elif kind == "stream":
            (self._stderr if content.get("name") == "stderr" else self._stdout).append(content.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            bundle = {"type": kind, "data": content.get("data", {}), "metadata": content.get("metadata", {})}
            self.result.outputs.append(bundle)
            if kind == "execute_result":
                self.result.execute_result = bundle["data"]
        elif kind == "error":
            self.result.error = ExecutionError.from_content(content)
        elif kind == "clear_output":
            self._stdout.clear()
            self._stderr.clear()
            self.result.outputs.clear()
        super().on_iopub(msg)

    def _maybe_done(self) -> None:
        if self.reply is not None and self.idle and not self.done.ready():
            content = self.reply["content"]
            result = self.result
            result.status = content.get("status", "error")
            result.execution_count = content.get("execution_count")
            result.payload = [p for p in content.get("payload") or [] if isinstance(p, dict)]
            if result.status == "error" and result.error is None:
                result.error = ExecutionError.from_content(content)
            result.stdout = "".join(self._stdout)
            result.stderr = "".join(self._stderr)
            result.duration = time.monotonic() - self.sent_at
            self.done.set(result)

    def result_within(self, timeout: float | None, label: str) -> ExecutionResult:
        """The result, waiting at most ``timeout`` seconds. Raises ``ExecutionTimeout`` past it,
        ``OutputLimitExceeded`` once more than ``max_output`` characters of output arrived (even if
        the execution finished meanwhile: its output is gone), and whatever ``fail`` set."""
        gevent.wait([self.done, self.overflow], timeout=timeout, count=1)
        if self.overflow.is_set() and self.max_output is not None:
            raise OutputLimitExceeded(f"{label}: the output exceeded {self.max_output} bytes", self.max_output)
        if not self.done.ready():
            raise ExecutionTimeout(f"{label}: execution exceeded {timeout:g}s", timeout)
        return self.done.get()


P = TypeVar("P", bound=PendingRequest)


def REPLY_ONLY(msg_id: str) -> PendingRequest:  # noqa: N802 - used as a collector, like the classes
    """A collector for requests whose reply is enough (no iopub idle follows control requests)."""
    return PendingRequest(msg_id, reply_only=True)
