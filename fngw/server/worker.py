"""fngw's gunicorn worker: gunicorn's gevent worker, with these additions.

- WSGI joins repeated headers into one comma-separated value, but Kernel Gateway hands notebooks
  repeated headers as lists: this worker passes gunicorn's parsed header list to the application
  under ``fngw.http.environ.RAW_HEADERS``; it also puts a hang-up watcher for the connection under
  ``WATCH_DISCONNECT`` and raises body parse errors as ``UnreadableBody``, so that resources never
  need gunicorn's own keys or errors.
- A connection the application took over (a websocket: ``fngw.http.environ.TAKE_OVER``) gets
  nothing more from gunicorn: the application's answer becomes gunicorn's ``ALREADY_HANDLED``, and
  gunicorn's ``is_already_handled`` hook ends the connection's keep-alive loop when the application
  is done with it (gunicorn would otherwise wait for another request on it).
- On SIGTERM (a stop, or a reload retiring this worker), the application's ``begin_shutdown`` (if
  it has one) turns readiness to 503 and tells websocket clients the gateway is going away (1001).
  Keep-alive connections are wound down without failing a request a client is sending: every
  response started from then on says ``Connection: close`` (the client then opens a new connection,
  to a worker that serves on), a request that arrives on an idle connection is still served, and
  a connection is closed only once it has been idle for ``IDLE_CLOSE_GRACE`` seconds with nothing
  to read, so that it does not hold the worker for the whole graceful timeout (gunicorn waits for
  every open connection). HTTP/1.1 cannot close a keep-alive connection with no race at all: a
  client that sends at the very moment of the close sees it closed, as with any keep-alive expiry.
"""

from __future__ import annotations

import contextlib
import functools
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.local
from gunicorn.http.errors import ParseException
from gunicorn.workers.base_async import ALREADY_HANDLED
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

from fngw.http.body import UnreadableBody
from fngw.http.environ import RAW_HEADERS, TAKE_OVER, TAKEN_OVER, WATCH_DISCONNECT
from fngw.master.runtime import InstancePaths
from fngw.server.gunicorn_hooks import JOB_GRACE_MARGIN
from fngw.server.startup import AbandonedReload

from .disconnect_watch import watch_disconnect

REPLACEMENT_READY_TIMEOUT = 120.0  # gunicorn_hooks.READY_TIMEOUT: the master retires the old workers then
# Stopping: a connection idle this long is closed. A client in a loop sends its next request within
# it and gets that answer with "Connection: close"; a pooled connection idle longer is simply closed.
IDLE_CLOSE_GRACE = 1.0
CLOSER_STEP = 0.1  # seconds between the closer's looks at the connections
JOB_DRAIN_MARGIN = 5.0  # seconds beyond the longest run: a job's end, its kernels' stop (gunicorn_hooks.worker_exit)


def _take_over(environ: dict[str, Any], sock: socket.socket) -> socket.socket:
    """The connection's socket, now the application's (a websocket): see ``TAKE_OVER``."""
    environ[TAKEN_OVER] = True
    return sock


class _TranslatedBody:
    """gunicorn's request body stream, its parse errors (a malformed chunk) raised as
    ``fngw.http.body.UnreadableBody``, which resources know without knowing gunicorn."""

    def __init__(self, stream: Any):
        self._stream = stream

    def read(self, size: int | None = None) -> bytes:
        try:
            return self._stream.read(size)
        except ParseException as exc:
            raise UnreadableBody(str(exc)) from None

    def readline(self, size: int | None = None) -> bytes:
        try:
            return self._stream.readline(size)
        except ParseException as exc:
            raise UnreadableBody(str(exc)) from None

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class GeventWorker(_GeventWorker):
    """gunicorn's gevent worker with fngw's additions (module docstring)."""

    def load_wsgi(self) -> None:
        """Wrap the application: raw headers, hang-up watcher, body errors and socket take-over in environ."""
        super().load_wsgi()
        app: Any = getattr(self, "wsgi")  # noqa: B009 - set by gunicorn's load_wsgi: no type to infer
        self.fngw_application = app  # gunicorn_hooks.worker_exit closes it
        self._begin_shutdown = getattr(app, "begin_shutdown", None)
        # The request a greenlet handles now: one request at a time per connection and greenlet.
        current = gevent.local.local()
        self._current = current

        def application(environ: dict[str, Any], start_response: Any) -> Any:
            if self.alive:  # else gunicorn has already made this response close its connection
                start_response = self._closing_when_stopped(start_response)
            sock = environ.get("gunicorn.socket")
            environ[RAW_HEADERS] = getattr(current, "headers", None)
            environ["wsgi.input"] = _TranslatedBody(environ["wsgi.input"])
            if sock is not None:
                environ[WATCH_DISCONNECT] = functools.partial(watch_disconnect, sock)
                environ[TAKE_OVER] = functools.partial(_take_over, environ, sock)
            result = app(environ, start_response)
            return ALREADY_HANDLED if environ.get(TAKEN_OVER) else result

        self.wsgi = application
        self._open: set[socket.socket] = set()  # client sockets of this worker
        self._busy: set[socket.socket] = set()  # the sockets whose request is being handled
        self._idle_since: dict[socket.socket, float] = {}  # open sockets between requests: since when

    def _closing_when_stopped(self, start_response: Any) -> Any:
        """``start_response`` that makes the response say ``Connection: close`` if the worker began
        stopping while the request ran (gunicorn decides it only when a request begins)."""
        response = getattr(start_response, "__self__", None)  # gunicorn's Response
        if response is None or not hasattr(response, "force_close"):
            return start_response

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not self.alive:
                response.force_close()
            return start_response(status, headers, exc_info)

        return start

    def run(self) -> None:
        """Serve; a worker started by a reload first waits until its pools are up (the workers it
        replaces serve meanwhile), so no request waits on its kernels starting."""
        instance = InstancePaths(self.ppid)
        app = self.fngw_application
        if isinstance(app, AbandonedReload):  # fngw.wsgi: nothing to serve
            self._idle_abandoned(instance)
            return
        if instance.replacing():
            ready = getattr(app, "ready", None)
            pools = getattr(app, "pools", None)
            deadline = time.monotonic() + REPLACEMENT_READY_TIMEOUT
            while ready is not None and not ready.is_set() and time.monotonic() < deadline and self.alive:
                self.notify()  # the master's heartbeat check
                ready.wait(0.5)
                failures = pools.start_failures() if pools is not None else []
                if failures and pools is not None:  # a failing seed cell: the old version serves on
                    reason = "\n  ".join(failures)
                    print(f"fngw: this reload is abandoned, its kernels cannot start:\n  {reason}", file=sys.stderr)
                    self._idle_abandoned(instance, then=pools.shutdown)  # they would retry forever
                    return
        super().run()
        self._finish_jobs()

    def _finish_jobs(self) -> None:
        """The connections are done: let running jobs end within what is left of the graceful
        timeout, while this worker's heartbeat goes on. Here, not in ``worker_exit``: gunicorn
        closes the heartbeat file before that hook, and a master kills a worker silent for longer
        than ``timeout`` (a reload's worker may wait for a job that long and more)."""
        finish = getattr(self.fngw_application, "finish_jobs", None)
        stopping = getattr(self, "fngw_stopping_since", None)
        if finish is None or stopping is None:
            return
        finish(self.cfg.graceful_timeout - (time.monotonic() - stopping) - JOB_GRACE_MARGIN, self.notify)

    def _idle_abandoned(self, instance: InstancePaths, then: Callable[[], None] | None = None) -> None:
        """Serve nothing and tell the master (``InstancePaths.failed``), which abandons the reload and
        keeps the old workers; ``then`` (stopping this worker's pools); wait to be stopped."""
        instance.failed.mkdir(mode=0o700, parents=True, exist_ok=True)
        (instance.failed / str(self.pid)).touch()
        if then is not None:
            then()
        while self.alive:
            self.notify()
            time.sleep(0.5)

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        """Track the connection, so SIGTERM can end idle keep-alive ones."""
        self._open.add(client)
        self._idle_since[client] = time.monotonic()
        try:
            super().handle(listener, client, addr)
        finally:
            self._open.discard(client)
            self._idle_since.pop(client, None)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: begin the application's shutdown and end idle keep-alive connections. Once: a
        reload's retirement and the master's worker management may both send it."""
        if getattr(self, "fngw_stopping_since", None) is not None:
            return
        self.fngw_stopping_since = time.monotonic()  # worker_exit gives running jobs what is left
        self._drain_fully_if_replaced()
        super().handle_exit(sig, frame)
        begin = getattr(self, "_begin_shutdown", None)
        if begin is not None:
            gevent.spawn(begin)
        if hasattr(self, "_open"):
            gevent.spawn(self._close_idle_connections)

    def _drain_fully_if_replaced(self) -> None:
        """A worker a reload replaces (the instance serves on) lets what it runs finish, however
        long its timeouts allow, rather than cut it at ``graceful_timeout``, which is for a stop
        (a platform kills the instance soon after SIGTERM). The master does not hurry it: a reload
        only signals old workers once, and this worker's heartbeat goes on while it drains."""
        if not (InstancePaths(self.ppid).handover / str(self.pid)).exists():
            return
        longest = getattr(getattr(self, "fngw_application", None), "longest_run", 0.0)
        drain = math.ceil(longest + JOB_DRAIN_MARGIN)
        if drain > self.cfg.graceful_timeout:
            self.cfg.set("graceful_timeout", drain)  # this worker's copy: the master's is unchanged

    def _close_idle_connections(self) -> None:
        """While stopping: close each connection once it has been idle for ``IDLE_CLOSE_GRACE``
        seconds with no request waiting to be read, until none is left open."""
        while self._open:
            now = time.monotonic()
            for client in list(self._open):
                since = self._idle_since.get(client)
                if client in self._busy or since is None or now - since < IDLE_CLOSE_GRACE:
                    continue
                # Its handler waits for a next request. The shutdown goes to the underlying socket:
                # gevent's own shutdown wakes the waiting handler with EBADF, which gunicorn logs
                # as an error with a traceback; the plain one wakes it with an end of stream.
                raw = getattr(client, "_sock", client)
                if _has_data(raw):
                    continue  # a request has arrived: its handler is about to read and serve it
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_RDWR)
            gevent.sleep(CLOSER_STEP)

    def handle_request(self, listener_name: Any, req: Any, sock: socket.socket, addr: Any) -> Any:
        """One request, its parsed header list available to the application (``RAW_HEADERS``)."""
        self._current.headers = req.headers
        self._busy.add(sock)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            self._current.headers = None
            self._busy.discard(sock)
            self._idle_since[sock] = time.monotonic()

    def is_already_handled(self, respiter: Any) -> bool:
        """gunicorn's hook for an answer the application gave on the socket itself: a taken-over
        connection (a websocket) ends here. Raising StopIteration is how gunicorn's keep-alive loop
        is told to close the connection instead of reading another request from it."""
        if respiter is ALREADY_HANDLED:
            raise StopIteration("the connection was taken over by the application")
        return super().is_already_handled(respiter)


def _has_data(sock: socket.socket) -> bool:
    """Bytes (or the peer's end of stream) are waiting to be read on ``sock``."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # BlockingIOError: nothing waiting; anything else: the handler will see it too
        return False
    return True
