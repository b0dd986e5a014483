"""One Jupyter kernel process, driven from gevent greenlets.

``Kernel`` owns the kernel's process (in its own process group), its connection file and its
channels. jupyter_client's managers and clients cannot run under gevent, so this class uses only its
low-level parts: ``write_connection_file``, ``launch_kernel`` and ``Session``, with sockets that
block only the calling greenlet (``channels.ChannelSocket``). One reader greenlet per channel
routes every message by ``parent_header.msg_id`` to the request that caused it, so any number of
greenlets may execute on one kernel at once.

Lifecycle: ``start`` (launch, wait for ``kernel_info_reply`` and the matching iopub ``idle``, run
the seed cells), ``execute``, ``interrupt`` (signal or message, as the kernelspec says),
``restart`` (kill, relaunch, re-seed), ``shutdown``. A monitor greenlet notices the process dying
within ``DEATH_POLL`` seconds and fails every pending request on the kernel with ``KernelDied``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gevent
import gevent.event
from jupyter_client.session import Session

from fngw.master.reaper import KEPT_FILE, PGID_FILE

from .channels import KernelChannels
from .errors import (
    ExecutionTimeout,
    KernelDied,
    KernelError,
    KernelNoReply,
    KernelRestarting,
    KernelSeedError,
    KernelStartError,
)
from .events import KernelEvents
from .messages import REPLY_ONLY, ExecutionError, ExecutionResult, P, PendingExecution, PendingRequest, SeedCell
from .process import AttachedProcess, launch, output_tail, signal_group, wait_exited
from .protocol import Message
from .specs import ResolvedSpec, resolve_kernelspec

if TYPE_CHECKING:
    from .messages import KernelState

log = logging.getLogger("fngw.kernels")

DEATH_POLL = 0.2  # seconds between checks of the kernel process
READY_NUDGE = 0.5  # resend kernel_info_request this often until iopub answers (slow joiner)
SHUTDOWN_GRACE = 1.0  # after shutdown_request, before the process group is killed
ATTACH_TIMEOUT = 5.0  # seconds an attached kernel gets to show that our iopub subscription is live
ATTACH_NUDGE = 0.05  # a running kernel answers at once: resend soon if iopub missed the answer
# A kernel sends a request's reply before its idle status, but on another socket (and, in ipykernel,
# from another thread), so idle may arrive first. Past these seconds without the reply, the kernel
# dropped it; much sooner after an interrupt, the known cause (see ``KernelNoReply``).
REPLY_AFTER_IDLE = 3.0
REPLY_AFTER_IDLE_INTERRUPTED = 0.5


class Kernel(KernelEvents):
    """One kernel process, its channels and its seed. Safe to share between greenlets."""

    def __init__(
        self,
        spec: ResolvedSpec | str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        seed: Sequence[SeedCell] = (),
        label: str = "kernel",
        runtime_dir: str | Path | None = None,
        start_timeout: float = 60.0,
        kernel_id: str | None = None,
        outlives_parent: bool = False,
    ):
        self.spec = resolve_kernelspec(spec) if isinstance(spec, str) else spec
        # False: the kernel exits when the process that started it does (ipykernel watches its
        # parent); True: it keeps running for another process of the instance to take over.
        self.outlives_parent = outlives_parent
        self.id = kernel_id or str(uuid.uuid4())
        self.label = label
        self.seed = tuple(seed)
        self.env = dict(env if env is not None else os.environ)
        self.cwd = str(cwd) if cwd else None
        self.runtime_dir = Path(runtime_dir) if runtime_dir else Path(tempfile.gettempdir())
        self.start_timeout = start_timeout
        self.state: KernelState = "new"
        self.last_activity = time.time()
        self.restarts = 0
        self.deaths = 0  # unexpected exits of the process, however they were noticed
        self.dropped_messages = 0  # messages refused as unreadable: bad or replayed signatures, garbage
        self._exit_noted = False
        self._proc: subprocess.Popen | AttachedProcess | None = None
        self.connection_info: dict[str, Any] = {}
        self._dir: Path | None = None
        self._last_output = ""
        self._conn: KernelChannels | None = None
        self._requests: dict[str, PendingRequest] = {}
        self._generation = 0
        self._monitor: gevent.Greenlet | None = None
        KernelEvents.__init__(self)

    @classmethod
    def attach(cls, spec: ResolvedSpec | str, connection_info: Mapping[str, Any], pid: int, **kwargs: Any) -> Kernel:
        """A ``Kernel`` for a kernel process that another process of this instance started: own
        sockets to its IPC endpoints, liveness from its pid. ``restart`` makes this process the
        kernel's owner; ``detach`` lets go of it without stopping it."""
        kernel = cls(spec, **kwargs)
        kernel._proc = AttachedProcess(pid)
        info = dict(connection_info)
        key = info["key"].encode() if isinstance(info["key"], str) else info["key"]
        session = Session(key=key, username="fngw", signature_scheme=info.get("signature_scheme", "hmac-sha256"))
        kernel.connection_info = info
        # The kernel's folder (its IPC sockets are named <folder>/ipc-<port>): whoever stops the
        # kernel removes it, so that no stale process-group id is left for a master to signal.
        folder = Path(str(info.get("ip", ""))).parent
        if info.get("transport") == "ipc" and (folder / PGID_FILE).exists():
            kernel._dir = folder
        kernel._conn = KernelChannels(info, session, kernel._route, kernel._dropped)
        kernel._generation += 1
        kernel._monitor = gevent.spawn(kernel._watch, kernel._proc, kernel._generation)
        kernel.state = "idle"
        # A new iopub subscription takes a moment to reach the kernel, and whatever the kernel
        # publishes before that is lost to us: a client's first execute would miss its output and
        # its idle status. Wait until iopub carries our own request's status; ask on the control
        # channel, which ipykernel answers even while another client's cell runs.
        try:
            kernel._wait_ready(ATTACH_TIMEOUT, channel="control", nudge=ATTACH_NUDGE)
        except KernelStartError:
            log.warning(
                "%s: kernel %s did not answer on iopub within %gs of attaching", kernel.label, kernel.id, ATTACH_TIMEOUT
            )
        return kernel

    def keep(self) -> None:
        """Mark the running process as one to outlive the process that launched it (with
        ``outlives_parent``): a gunicorn master then leaves it running when that process dies,
        for another to take over (``fngw.master.reaper.reap_unkept``)."""
        if self._dir is not None:
            with contextlib.suppress(FileNotFoundError):  # its folder went with a shutdown meanwhile
                (self._dir / KEPT_FILE).touch()

    @property
    def attached(self) -> bool:
        """True when another process of the instance owns the kernel process."""
        return isinstance(self._proc, AttachedProcess)

    def detach(self) -> None:
        """Stop using an attached kernel without stopping its process."""
        self._let_go(KernelRestarting(f"{self.label}: kernel {self.id} was restarted elsewhere"))
        self.state = "stopped"

    @property
    def pid(self) -> int | None:
        """The kernel process's id (None before its first start)."""
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        """The process runs and the kernel is neither dead nor stopping."""
        running = self._proc is not None and self._proc.poll() is None
        return running and self.state not in ("dead", "stopping", "stopped")

    @property
    def pending(self) -> int:
        """Requests sent and not yet complete (an execution that timed out stays pending until idle)."""
        return len(self._requests)

    def send_message(self, channel: str, msg: Message) -> None:
        """Send a message built by a client (header, parent_header, metadata, content, buffers) on
        ``channel``, signed with this kernel's key; its replies go to ``on_message`` listeners."""
        if self._conn is None or not self.alive:
            raise KernelDied(f"{self.label}: kernel {self.id} is not running", started=False)
        buffers = cast("list[bytes | memoryview[bytes]]", msg.get("buffers")) or None  # (invariant in its stub)
        self._conn.send(channel, cast("dict[str, Any]", msg), buffers)

    def start(self) -> None:
        """Launch, wait until ready, seed. Raises ``KernelStartError``/``KernelSeedError``; on failure
        nothing is left running."""
        self.state = "starting"
        self._bring_up()

    def execute(
        self,
        code: str,
        timeout: float | None = None,
        *,
        store_history: bool = False,
        silent: bool = False,
        max_output: int | None = None,
        on_output: Callable[[Message], None] | None = None,
    ) -> ExecutionResult:
        """Run ``code``; the result whatever the code did. Raises ``ExecutionTimeout`` past
        ``timeout`` seconds, ``OutputLimitExceeded`` once its stream, display and result output
        passes ``max_output`` characters (in both cases the execution keeps running: interrupt or
        restart the kernel), ``KernelDied`` if the process dies, ``KernelRestarting`` if it is
        restarted meanwhile. ``on_output`` gets each output message as it arrives (the result then
        holds no stream text or displays: see ``PendingExecution``)."""
        if self._conn is None or not self.alive:
            raise KernelDied(f"{self.label}: kernel {self.id} is not running", started=False)
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": False,  # input() fails at once instead of waiting for a reply nobody sends
            "stop_on_error": False,
        }
        keep = on_output is None
        request = self._send(
            "shell", "execute_request", content, lambda i: PendingExecution(i, max_output, on_output, keep)
        )
        return request.result_within(timeout, self.label)

    def _dropped(self) -> None:
        self.dropped_messages += 1

    def interrupt(self) -> None:
        """Interrupt the running cell as the kernelspec says: SIGINT to the group, or a message."""
        if not self.alive:
            return
        for request in self._requests.values():
            request.interrupted = True
        if self.spec.interrupt_mode == "message":
            self._send("control", "interrupt_request", {}, REPLY_ONLY)
        elif self._proc is not None:
            signal_group(self._proc.pid, signal.SIGINT)

    def wait_idle(self, timeout: float) -> bool:
        """True once every pending request has completed (within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        for request in list(self._requests.values()):
            remaining = deadline - time.monotonic()
            if remaining > 0:
                request.done.wait(remaining)
            if not request.done.ready():
                return False
        return not self._requests

    def restart(self) -> None:
        """Kill the process group, start a fresh process and seed it again."""
        self._note_unexpected_exit()
        self.state = "restarting"
        self._terminate(KernelRestarting(f"{self.label}: kernel {self.id} is restarting"))
        self.restarts += 1
        self._bring_up()

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Ask the kernel to exit, then kill its process group; remove its files."""
        if self._conn is not None and self.alive:
            self.state = "stopping"  # the exit that follows is ours, not a death
            try:
                self._send("control", "shutdown_request", {"restart": False}, REPLY_ONLY)
                wait_exited(self._proc, grace)
            except KernelError:
                pass
        self._terminate(KernelDied(f"{self.label}: kernel {self.id} was shut down"))
        self.state = "stopped"

    def _bring_up(self) -> None:
        """Launch, wait until ready, seed; on any failure (gevent.Timeout included, hence
        BaseException) kill what was started and leave the kernel dead."""
        try:
            self._launch()
            self._wait_ready(self.start_timeout)
            self._run_seed()
        except BaseException:
            self._terminate()
            self.state = "dead"
            raise
        self.state = "idle"

    def _launch(self) -> None:
        self._generation += 1
        self._exit_noted = False
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="k-", dir=self.runtime_dir))
        session = Session(key=uuid.uuid4().hex.encode(), username="fngw", signature_scheme="hmac-sha256")
        # In a greenlet of its own: an interruption of ours (a launch timeout, a client that left)
        # arriving while the process is being created must not leave it running unknown to us.
        launching = gevent.spawn(
            launch, self.spec, self._dir, session.key, {**self.env, **self.spec.env}, self.cwd, self.outlives_parent
        )
        try:
            self._proc, info = launching.get()
        except BaseException:
            launching.join()  # let the creation finish, then stop what it created
            if launching.successful():
                orphan, _ = launching.value
                signal_group(orphan.pid, signal.SIGKILL)
                wait_exited(orphan, 5.0)
            raise
        self.connection_info = dict(info)
        self._conn = KernelChannels(info, session, self._route, self._dropped)
        self._monitor = gevent.spawn(self._watch, self._proc, self._generation)

    def _wait_ready(self, timeout: float, channel: str = "shell", nudge: float = READY_NUDGE) -> None:
        """Until a kernel_info_reply (asked on ``channel``) and its iopub idle both arrive: iopub
        subscriptions take a moment to connect, so the request is repeated until iopub answers."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KernelStartError(f"{self.label}: kernel did not answer within {timeout:g}s{self._stderr_tail()}")
            request = self._send(channel, "kernel_info_request", {}, PendingRequest)
            try:
                request.done.wait(min(nudge, remaining))  # not get(timeout=): see KernelPool.acquire
                if request.done.ready():
                    request.done.get()
                    return
                self._requests.pop(request.msg_id, None)
            except KernelDied:
                raise KernelStartError(
                    f"{self.label}: kernel process exited during start{self._stderr_tail()}"
                ) from None

    def _run_seed(self) -> None:
        for cell in self.seed:
            try:
                result = self.execute(cell.source, self.start_timeout, silent=cell.silent)
            except ExecutionTimeout:
                raise KernelSeedError(
                    self.label, cell.index, "Timeout", f"the cell ran longer than {self.start_timeout:g}s"
                ) from None
            except KernelDied:
                raise KernelSeedError(self.label, cell.index, "KernelDied", "the kernel exited") from None
            if not result.ok:
                error = result.error or ExecutionError("Error", result.status, [])
                raise KernelSeedError(self.label, cell.index, error.ename, error.evalue, error.traceback)

    def _send(self, channel: str, msg_type: str, content: dict[str, Any], collector: Callable[[str], P]) -> P:
        """Send a request on ``channel``; ``collector(msg_id)`` makes what gathers its answer."""
        assert self._conn is not None
        msg = self._conn.session.msg(msg_type, content)
        request = collector(msg["header"]["msg_id"])
        self._requests[request.msg_id] = request
        self._conn.send(channel, msg)
        if isinstance(request, PendingExecution) and self.state == "idle":  # seeding keeps "starting"
            self.state = "busy"
        return request

    def _route(self, channel: str, msg: Message) -> None:
        self.last_activity = time.time()
        parent = (msg.get("parent_header") or {}).get("msg_id")
        request = self._requests.get(parent) if parent else None
        if channel == "iopub":
            if request is not None:
                request.on_iopub(msg)
            for listener in self._iopub_listeners:
                try:
                    listener(self, msg)
                except Exception:
                    log.exception("iopub listener failed")
        elif request is not None and channel in ("shell", "control"):
            request.on_reply(msg)
        elif request is None:
            for message_listener in self._message_listeners:
                try:
                    message_listener(self, channel, msg)
                except Exception:
                    log.exception("message listener failed")
        if request is None:
            return
        if request.done.ready():
            self._settle(request)
        elif request.replyless and request.waiting_for_reply is None:
            grace = REPLY_AFTER_IDLE_INTERRUPTED if request.interrupted else REPLY_AFTER_IDLE
            request.waiting_for_reply = gevent.spawn_later(grace, self._no_reply, request)

    def _settle(self, request: PendingRequest) -> None:
        """A request is complete: forget it; the kernel is idle once no execution is pending."""
        if self._requests.get(request.msg_id) is request:
            del self._requests[request.msg_id]
        if self.state == "busy" and not any(isinstance(r, PendingExecution) for r in self._requests.values()):
            self.state = "idle"

    def _no_reply(self, request: PendingRequest) -> None:
        """The kernel went idle and its reply never came: end the request rather than hold the
        kernel until the caller's timeout (or for ever, without one)."""
        if not request.replyless or self._requests.get(request.msg_id) is not request:
            return  # the reply came meanwhile, or the kernel was stopped or restarted
        why = " after an interrupt" if request.interrupted else ""
        log.warning("%s: kernel %s went idle without replying to %s%s", self.label, self.id, request.msg_id, why)
        request.fail(KernelNoReply(f"{self.label}: the kernel finished the request{why} without sending its reply"))
        self._settle(request)

    def _watch(self, proc: Any, generation: int) -> None:
        while proc.poll() is None:
            gevent.sleep(DEATH_POLL)
        if generation != self._generation or self.state in ("stopping", "stopped", "restarting"):
            return  # an exit we caused
        self._note_unexpected_exit()
        if self.attached:  # another process owns it and may well have stopped it on purpose
            log.info("%s: attached kernel %s (pid %s) is gone", self.label, self.id, proc.pid)
        else:
            log.warning("%s: kernel %s (pid %s) died with exit code %s", self.label, self.id, proc.pid, proc.returncode)
        self._terminate(KernelDied(f"{self.label}: kernel {self.id} died (exit code {proc.returncode})"))
        self.state = "dead"
        for callback in list(self._death_callbacks):
            try:
                callback(self)
            except Exception:
                log.exception("death callback failed")

    def _note_unexpected_exit(self) -> None:
        """Count a death once per process, whether the monitor or a restart noticed it first."""
        if self._proc is not None and self._proc.poll() is not None and not self._exit_noted:
            if self.state not in ("stopped", "new"):
                self.deaths += 1
            self._exit_noted = True

    def _let_go(self, failure: KernelError) -> None:
        """Fail pending requests, stop the monitor, close the sockets; the process is left alone."""
        self._generation += 1  # the monitor of this process must not report what follows as a death
        for request in list(self._requests.values()):
            request.fail(failure)
        self._requests.clear()
        if self._monitor is not None and self._monitor is not gevent.getcurrent():
            self._monitor.kill(block=False)
        self._monitor = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _terminate(self, error: KernelError | None = None) -> None:
        """Kill the process group, fail pending requests, close sockets, remove files."""
        self._generation += 1  # before the kill: the monitor must not report it as a death
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGKILL)
            if not wait_exited(self._proc, 5.0):
                log.error("%s: kernel pid %s did not exit after SIGKILL", self.label, self._proc.pid)
        self._let_go(error or KernelDied(f"{self.label}: kernel {self.id} stopped"))
        if self._dir is not None:
            self._last_output = output_tail(self._dir)  # kept for the error that explains a failed start
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _stderr_tail(self) -> str:
        text = output_tail(self._dir) if self._dir is not None else self._last_output
        return f"; its output ended with:\n{text}" if text else ""

    def __repr__(self) -> str:
        return f"<Kernel {self.label} {self.id} {self.spec.name} pid={self.pid} {self.state}>"
