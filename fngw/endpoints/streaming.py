"""Streaming a cell's output to the client while the cell runs.

Three forms (docs/notebooks.md, "Streaming"): plain chunked text (the endpoint says ``stream:
true`` and the client accepts text), server-sent events (``Accept: text/event-stream``) and NDJSON
(``Accept: application/x-ndjson``), the last two for any endpoint. Events are ``stdout``,
``stderr``, ``display`` (a mime bundle), ``error`` (``{ename, evalue}``, the traceback where the
manifest allows it), ``dropped`` (``{bytes}`` a slow reader missed) and a final ``end``
(``{status, duration_ms}``: the status the buffered response would have had).

The kernel's reader greenlet hands each output message to ``StreamSession.on_output``, which
encodes it into a ``StreamBuffer`` and never waits: a client that reads slower than the cell prints
costs at most ``stream.buffer`` bytes, past which output is dropped (and a ``dropped`` event, or a
marker line in plain text, says how much). The response body is ``StreamSession.chunks``, which the
server sends as it yields; it watches the connection, so a client that leaves interrupts the cell
at once and the kernel goes back to its pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import falcon
import gevent
import gevent.event

from fngw.http.disconnect import ClientGone, abandon_if_client_leaves
from fngw.http.streams import ObservedStream
from fngw.kernels import ExecutionError, ExecutionResult, ExecutionTimeout, Kernel, KernelError, KernelPool
from fngw.kernels.protocol import Message
from fngw.manifest import StreamSettings

from .errors import ResponseInfoInvalid
from .execution import ExecutionPlan, Outcome, streamed_code
from .response import describe_failure, parse_response_info
from .stream_wire import MODE_NAMES, PLAIN, SSE, StreamBuffer, encode

log = logging.getLogger("fngw.endpoints")

KEEPALIVE = 15.0  # seconds of silence before an SSE comment (or NDJSON keep-alive line) goes out
COALESCE = 0.005  # seconds: small output arriving this close together goes out as one write
COALESCE_BELOW = 16 * 1024  # bytes: more than this waiting goes out at once
REINTERRUPT = 0.25  # seconds between interrupts while an interrupted cell still runs
INTERRUPTS = 40  # at most (10 s); then the pool's own recovery deals with the kernel


class StreamSession:
    """One streamed execution: starts the cell on ``kernel`` (leased from ``pool``, given back when
    the run ends), and produces the body. ``tracebacks``: whether error events carry them."""

    def __init__(
        self,
        mode: str,
        settings: StreamSettings,
        plan: ExecutionPlan,
        pool: KernelPool,
        kernel: Kernel,
        request_json: str,
        timeout: float,
        tracebacks: bool,
    ):
        self.mode = mode
        self.settings = settings
        self.plan = plan
        self.pool = pool
        self.kernel = kernel
        self.request_json = request_json
        self.timeout = timeout
        self.tracebacks = tracebacks
        self.buffer = StreamBuffer(settings.buffer)
        self.ident = 0
        self.started = time.monotonic()
        self.last_output = self.started
        self.first_output = gevent.event.Event()  # set at the first body byte, or when the run ends
        self.displays: list[dict[str, Any]] = []  # plain mode, until the first byte: for a buffered answer
        self.result: ExecutionResult | None = None
        self.info_stdout: str | None = None  # what the ResponseInfo cell printed (None: none ran)
        self.info_error: ExecutionError | None = None
        self.status = 200
        self.failure: Exception | None = None  # what ended the run early (timeout, kernel lost)
        self.abandoned = False
        self.interrupted = False  # the gateway interrupted the cell (idle limit, timeout, client gone)
        self.cut_off = False  # the client missed more than a buffer of output: no more output is sent
        self.lost = 0  # bytes of output the client missed so far (reported in dropped events)
        self.deadline = self.started + timeout  # the whole stream's, ResponseInfo included
        self.interrupter: gevent.Greenlet | None = None
        self.released = False  # the run gave its kernel back: never interrupt it again
        self.ended_by: int | None = None  # the status our interruption decides (504 for the idle limit)
        self.body_started = False  # a body byte was queued (plain: stdout only, until then)
        self.runner: gevent.Greenlet | None = None
        self.stream: ObservedStream | None = None

    # --- producing (the kernel's reader greenlet and the runner) ---------------------------------

    def start(self) -> None:
        """Send the cell; returns at once."""
        self.runner = gevent.spawn(self._run)

    def emit(self, name: str, data: Any) -> None:
        """Queue one event (never waits); a ``dropped`` marker goes first when output was lost.
        Once a client has missed more than a whole buffer of output it is cut off: the cell is
        interrupted (a flood must not go on for nobody: the gateway would still have to read it)
        and the stream ends with an ``error`` event."""
        if self.cut_off and name not in ("end", "error"):
            return
        if self.lost + self.buffer.dropped > self.settings.buffer and not self.cut_off:
            self.cut_off = True
            self.ended_by = self.ended_by or 502
            self._interrupt()
            lost, self.buffer.dropped = self.buffer.dropped, 0
            self._push("dropped", {"bytes": lost}, force=True)
            message = "the client read too slowly: the stream was ended and the cell interrupted"
            self._push("error", {"ename": "SlowClient", "evalue": message, "message": message}, force=True)
            return
        if self.buffer.dropped and name != "end":
            lost, self.buffer.dropped = self.buffer.dropped, 0
            self.lost += lost
            self._push("dropped", {"bytes": lost}, force=True)
        self._push(name, data, force=name in ("end", "error"))

    def _push(self, name: str, data: Any, force: bool) -> None:
        if self.mode == PLAIN and not self.body_started and name != "stdout":
            return  # before the first byte, a plain stream can still become a buffered answer
        chunk = encode(self.mode, self.ident + 1, name, data)
        if chunk and self.buffer.push(chunk, force):
            self.ident += 1  # ids count the events the client gets: no gaps for dropped ones
            self.body_started = True
            self.first_output.set()

    def on_output(self, msg: Message) -> None:
        """An output message of the cell (from the kernel's reader greenlet: must not block)."""
        self.last_output = time.monotonic()
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.emit("stderr" if content.get("name") == "stderr" else "stdout", content.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            data = content.get("data", {})
            if self.mode == PLAIN and not self.first_output.is_set():
                self.displays.append({"type": kind, "data": data, "metadata": content.get("metadata", {})})
            self.emit("display", data)
        elif kind == "error":
            error = ExecutionError.from_content(content)
            if not (self.interrupted and error.ename == "KeyboardInterrupt"):  # our interrupt, already told
                self.emit("error", self._error(error))

    def _error(self, error: ExecutionError) -> dict[str, Any]:
        found: dict[str, Any] = {
            "ename": error.ename,
            "evalue": error.evalue,
            "message": describe_failure(error.ename, error.evalue),
        }
        if self.tracebacks:
            found["traceback"] = error.traceback
        return found

    def _run(self) -> None:
        try:
            self.result = self.pool.execute(
                streamed_code(self.plan, self.request_json),
                timeout=self.timeout,
                kernel=self.kernel,
                on_output=self.on_output,
            )
            self.status = self.ended_by or self._final_status(self.result)
        except ExecutionTimeout as exc:
            self.failure, self.status, self.interrupted = exc, 504, True
            message = f"the cell did not finish within {self.timeout:g}s; it is being interrupted"
            self.emit("error", {"ename": "Timeout", "evalue": str(exc), "message": message})
        except KernelError as exc:
            self.failure, self.status = exc, 502
            self.emit("error", {"ename": type(exc).__name__, "evalue": str(exc), "message": str(exc)})
        except Exception as exc:  # a fault of ours: the client still gets an error and an end
            log.exception("streamed execution failed")
            self.failure, self.status = exc, 500
            message = "the gateway failed to run this request; see its log"
            self.emit("error", {"ename": "GatewayError", "evalue": message, "message": message})
        finally:
            # The pool interrupts or replaces a kernel still busy; never interrupt it after this: it
            # may already run another request's cell. Said before releasing: release() may switch to
            # the interrupter greenlet while this one is not dead yet.
            self.released = True
            self.pool.release(self.kernel)
            duration = round(1000 * (time.monotonic() - self.started), 3)
            self.emit("end", {"status": self.status, "duration_ms": duration})
            self.buffer.close()
            self.first_output.set()

    def _final_status(self, result: ExecutionResult) -> int:
        """What the buffered response's status would have been: 500 for a failed cell or
        ResponseInfo, else what ResponseInfo says, else 200."""
        if not result.ok:
            return 500
        info = self.plan.endpoint.response_info
        if info is None or self.abandoned or (self.mode == PLAIN and self.body_started):
            return 200  # (plain: the status went out with the first byte)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return 504
        try:
            answer = self.pool.execute(info, timeout=remaining, kernel=self.kernel)
            self.info_stdout = answer.stdout
            if not answer.ok:
                self.info_error = answer.error
                return 500
            status, _ = parse_response_info(answer.stdout)
        except ExecutionTimeout:
            return 504
        except (KernelError, ResponseInfoInvalid):
            return 500
        return status or 200

    # --- consuming (the request's greenlet) -----------------------------------------------------

    def wait_first_output(self, req: falcon.Request) -> None:
        """Until the first body byte or the end of the run (plain mode decides its status then);
        a client that leaves meanwhile interrupts the cell (``ClientGone``)."""
        idle = self.settings.idle
        try:
            with abandon_if_client_leaves(req):
                while not self.first_output.wait(idle):
                    if time.monotonic() - self.last_output >= (idle or 0) and self.ended_by is None:
                        message = f"no output for {idle:g}s (stream.idle): the cell was interrupted"
                        self.failure = ExecutionTimeout(message, None)
                        self.ended_by = 504
                        self._interrupt()
        except ClientGone:
            self.abandon()
            raise

    def observed(self, req: falcon.Request) -> ObservedStream:
        """The response body, observed for the access log and metrics (``ObservedStream``)."""
        started = getattr(req.context, "started", None)  # the request's start (fngw.telemetry)
        self.stream = ObservedStream(self.chunks(req), MODE_NAMES[self.mode], started)
        return self.stream

    def chunks(self, req: falcon.Request) -> Iterator[bytes]:
        """The body, written as the cell produces it, until the ``end`` event."""
        try:
            if self.mode == SSE:
                yield b": fngw stream\n\n"  # the status and headers go out now, not with the first event
            while True:
                if self._wait(req):
                    data = self.buffer.take()
                    if data:
                        yield data
                    if self.buffer.closed and not self.buffer.chunks:
                        return
                elif self.mode != PLAIN:
                    yield b": keep-alive\n\n" if self.mode == SSE else b'{"event": "keep-alive"}\n'
        except (ClientGone, GeneratorExit):
            self.abandon()
        finally:
            if self.runner is not None and not self.runner.dead:
                self.abandon()

    def _wait(self, req: falcon.Request) -> bool:
        """Wait for output (coalescing what arrives within ``COALESCE``), at most until a keep-alive
        is due; an idle limit passed interrupts the cell. False when nothing came."""
        idle = self.settings.idle
        wait = KEEPALIVE
        if idle is not None and not self.buffer.closed:
            wait = min(wait, max(0.0, self.last_output + idle - time.monotonic()))
        with abandon_if_client_leaves(req):
            arrived = self.buffer.changed.wait(wait)
            if arrived and not self.buffer.closed and self.buffer.size < min(COALESCE_BELOW, self.buffer.limit // 8):
                gevent.sleep(COALESCE)
        if not arrived and idle is not None and time.monotonic() - self.last_output >= idle and not self.buffer.closed:
            self.ended_by = 504
            self._interrupt()
            message = f"no output for {idle:g}s (stream.idle): the cell was interrupted"
            self.emit("error", {"ename": "Idle", "evalue": message, "message": message})
            self.last_output = time.monotonic()
            return True
        return arrived

    def abandon(self) -> None:
        """The client is gone: interrupt the cell; its kernel goes back to the pool when it stops."""
        if self.abandoned or self.buffer.closed:
            return
        self.abandoned = True
        if self.stream is not None:
            self.stream.client_left = True
        self._interrupt()

    def _interrupt(self) -> None:
        """Interrupt the cell, and again every ``REINTERRUPT`` seconds while the run lasts: an
        interrupt that lands before the kernel has begun the cell (a client that leaves at once)
        is lost, and a cell may catch one. Only while the run holds the kernel: never after. One
        that lands outside the cell makes ipykernel drop the reply; the kernel runtime then ends
        the request soon after the kernel goes idle (``KernelNoReply``), so the kernel is not held."""
        self.interrupted = True
        if self.interrupter is not None or self.runner is None or self.runner.dead:
            return

        def keep_interrupting() -> None:
            for _ in range(INTERRUPTS):
                if self.runner is None or self.runner.dead or self.released:
                    return
                self.kernel.interrupt()
                gevent.sleep(REINTERRUPT)

        self.interrupter = gevent.spawn(keep_interrupting)

    # --- the buffered answer of plain mode -------------------------------------------------------

    def buffered_outcome(self) -> Outcome:
        """Plain mode, the run ended before any byte: what the buffered response renders (the
        cell's displays and ResponseInfo apply). Raises what ended the run early (a timeout, a
        lost kernel), as the buffered path would."""
        if self.failure is not None:
            raise self.failure  # a timeout (504), the idle limit (504), a lost kernel (502)
        assert self.result is not None
        self.result.outputs = self.displays
        return Outcome(self.result, self.info_stdout, self.info_error, self.displays)
