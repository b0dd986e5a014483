"""Run in the Python kernels fngw starts, before their seed cells: ``_fngw_output(isolate=...)``.

**Chunking (every kernel).** ipykernel sends what a cell printed every 0.2 s as one message, so a
loop printing 300 MiB, or one ``print`` of a large string, becomes a single message of hundreds of
megabytes, which the gateway must hold whole (several times, decoded and re-encoded) before it can
drop it or hand it on. Here every write is cut into pieces of at most ``chunk`` characters and the
stream is flushed whenever that much is buffered: no stream message is larger than about
``chunk``, and the gateway's memory stays bounded by what it chooses to keep.

**Isolation (pool kernels, ``isolate=True``).** ipykernel tags output with the parent header of the
request being executed *now*, whatever produced it (ipykernel 6), or does so for every thread
(ipykernel 7: threads do not inherit context variables). A thread started by one request that
prints a second later therefore lands in another client's response. The rule enforced here:

- output (stdout, stderr, ``display``, ``clear_output``) is kept only while a cell runs
  (``pre_run_cell`` to ``post_run_cell``), and only from the thread and asyncio task that run it;
- output written to the process's file descriptors (subprocesses, C libraries), which ipykernel
  reads in a thread of its own, is kept while a cell runs unless a process left running by an
  earlier cell still holds those descriptors: then nobody can tell whose it is, and it is dropped.

The streams' classes are swapped for subclasses (ipykernel checks ``isinstance``) whose ``write``
is a property: IPython 9 replaces ``stream.write`` around every cell and restores it after, and
whatever it sets is wrapped again. Nothing is kept between cells besides the window.
"""


def _fngw_output(isolate: bool, chunk: int = 1 << 20) -> None:
    """``chunk``: characters, the largest piece of stream output sent as one message."""
    import asyncio
    import fcntl
    import os
    import sys
    import termios
    import threading
    import time

    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "events") or not hasattr(shell, "display_pub"):
        return  # not IPython: nothing to hook into (docs/notebooks.md says what then holds)
    window: dict = {"thread": None, "task": None, "fd": None, "earlier": set(), "cpu": None}
    MARK = "\x00fngw-drain\x00"  # written behind a cell's descriptor output, see drain()
    drained: dict = {}  # id(stream) -> threading.Event, set when its reader hands MARK on
    watchers = {getattr(s, "watch_fd_thread", None) for s in (sys.stdout, sys.stderr)} - {None}

    def current_task():
        try:
            return asyncio.current_task()
        except RuntimeError:  # no event loop in this thread
            return None

    def ours() -> bool:
        if not isolate:
            return True
        thread = window["thread"]
        if thread is None:
            return False
        if threading.get_ident() == thread:
            return current_task() is window["task"]
        if threading.current_thread() not in watchers:
            return False
        if window["fd"] is None:  # decided at the cell's first descriptor output, not for every cell
            window["fd"] = bool(outputs) and not any(holds_outputs(pid) for pid in window["earlier"])
        return window["fd"]

    def unwrap(method):
        while getattr(method, "_fngw_inner", None) is not None:
            method = method._fngw_inner
        return method

    def guard(method, dropped=None):
        def guarded(*args, **kwargs):
            if ours():
                return method(*args, **kwargs)
            return dropped(*args) if dropped is not None else None

        guarded._fngw_inner = method
        return guarded

    def swallowed(text="", *_):
        return len(text)

    def marked(stream, write):
        """Notices the drain marker (see ``drain``) as ipykernel's descriptor reader hands it on."""

        def noticing(text="", *args, **kwargs):
            if isinstance(text, str) and MARK in text and id(stream) in drained:
                drained[id(stream)].set()
                rest = text.replace(MARK, "")
                if rest:
                    write(rest, *args, **kwargs)
                return len(text)
            return write(text, *args, **kwargs)

        noticing._fngw_inner = write
        return noticing

    def chunked(stream, write):
        def chunks(text, *args, **kwargs):
            buffered = stream.__dict__.get("_fngw_buffered", 0)
            if not isinstance(text, str) or (len(text) <= chunk and buffered < chunk):
                if isinstance(text, str):
                    stream.__dict__["_fngw_buffered"] = buffered + len(text)
                return write(text, *args, **kwargs)
            for start in range(0, len(text), chunk):
                write(text[start : start + chunk], *args, **kwargs)
                stream.flush()
            if not text:
                stream.flush()
            return len(text)

        chunks._fngw_inner = write
        return chunks

    def stream_class(base):
        # Whatever is set as ``write`` (IPython 9 sets its history tee around each cell, and puts
        # back what it found after) is stored; one of our own wrappers set back means "nothing set",
        # so the wrappers never nest deeper than one tee.
        def get(self):
            outer = self.__dict__.get("_fngw_write")
            if outer is not None:  # it calls what it found, which is the guarded, chunked write
                return marked(self, guard(outer, swallowed))
            return marked(self, guard(chunked(self, base.write.__get__(self)), swallowed))

        def put(self, value):
            if getattr(unwrap(value), "__func__", None) is base.write:
                self.__dict__.pop("_fngw_write", None)
            else:
                self.__dict__["_fngw_write"] = value

        def delete(self):
            self.__dict__.pop("_fngw_write", None)

        def flush(self):
            self.__dict__["_fngw_buffered"] = 0
            return base.flush(self)

        namespace = {"write": property(get, put, delete), "flush": flush, "__module__": base.__module__}
        return type(base.__name__, (base,), namespace)

    for stream in (sys.stdout, sys.stderr):
        stream.__dict__.pop("write", None)
        stream.__class__ = stream_class(type(stream))
    if not isolate:
        return
    shell.display_pub.publish = guard(shell.display_pub.publish)
    shell.display_pub.clear_output = guard(shell.display_pub.clear_output)

    def pipe(fd: int):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None

    outputs = {pipe(1), pipe(2)} - {None}

    def read(path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.read(fd, 1 << 16)
        finally:
            os.close(fd)

    def children(pid) -> list[bytes]:
        found = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                found += read(f"/proc/{pid}/task/{task}/children").split()
        except OSError:
            pass
        return found

    def holds_outputs(pid: bytes) -> bool:
        name = pid.decode()
        try:
            if read(f"/proc/{name}/stat").rsplit(b")", 1)[1].split()[0] in b"ZX":
                return False
            return any(os.readlink(f"/proc/{name}/fd/{fd}") in outputs for fd in (1, 2))
        except OSError:
            return False

    def descendants() -> set[bytes]:
        """The processes this kernel started that still exist, and theirs, from /proc."""
        try:  # no child at all (the usual case) is known without reading /proc
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return set()
        pending, seen = children("self"), set()
        while pending:
            pid = pending.pop()
            if pid not in seen:
                seen.add(pid)
                pending += children(pid.decode())
        return seen

    # ipykernel reads the descriptors in a thread of its own: what a subprocess wrote just before
    # the cell ended may still be in the pipe, or read and not yet handed on, when the window
    # closes. Writing a marker behind it and waiting until the reader hands the marker on proves
    # everything before it was handed on. Only cells during which a reader ran pay for it: each
    # reader's CPU clock shows whether it woke up.
    pipes = [(s, s.__dict__.get("_original_stdstream_fd")) for s in (sys.stdout, sys.stderr)]
    pipes = [(s, fd) for s, fd in pipes if fd is not None and getattr(s, "_fid", None) is not None]
    drained.update({id(s): threading.Event() for s, _ in pipes})
    clocks = []
    for thread in watchers:
        try:
            clocks.append(time.pthread_getcpuclockid(thread.ident))
        except (AttributeError, OSError, TypeError):
            clocks = None  # cannot tell: drain after every cell
            break

    def readers_cpu():
        return None if clocks is None else [time.clock_gettime_ns(c) for c in clocks]

    def pending(stream) -> int:
        try:
            return int.from_bytes(fcntl.ioctl(stream._fid, termios.FIONREAD, bytes(4)), sys.byteorder)
        except OSError:
            return 0

    def drain() -> None:
        """Until ipykernel's readers have handed on all the cell's descriptor output (50 ms at most)."""
        if not pipes or (
            window["cpu"] is not None and readers_cpu() == window["cpu"] and not any(pending(s) for s, _ in pipes)
        ):
            return  # no reader woke up during the cell, and nothing waits in the pipes
        for stream, fd in pipes:
            drained[id(stream)].clear()
            os.write(fd, MARK.encode())
        deadline = time.monotonic() + 0.05
        for stream, _ in pipes:
            drained[id(stream)].wait(max(0.0, deadline - time.monotonic()))

    def forget_outputs() -> None:
        # IPython 9 keeps what every cell printed for its history, under the execution count, which
        # store_history=False never advances: every request's output would stay in the kernel.
        outputs_by_count = getattr(shell.history_manager, "outputs", None)
        if outputs_by_count is not None:
            outputs_by_count.clear()

    def opened(*_):
        forget_outputs()
        window["cpu"] = readers_cpu()
        window["fd"] = None  # nobody wrote to the descriptors yet
        window["earlier"] = descendants()  # processes of earlier cells
        window["task"] = current_task()
        window["thread"] = threading.get_ident()

    def closed(*_):
        if window["fd"] is not False:  # unless descriptor output is dropped anyway
            drain()
        window["thread"] = None
        forget_outputs()

    shell.events.register("pre_run_cell", opened)
    shell.events.register("post_run_cell", closed)
