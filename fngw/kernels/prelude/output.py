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
    window: dict = {"thread": None, "task": None, "fd": False}
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
        return window["fd"] and threading.current_thread() in watchers

    def guard(method, dropped=None):
        method = getattr(method, "_fngw_inner", method)

        def guarded(*args, **kwargs):
            if ours():
                return method(*args, **kwargs)
            return dropped(*args) if dropped is not None else None

        guarded._fngw_inner = method
        return guarded

    def swallowed(text="", *_):
        return len(text)

    def chunked(stream, write):
        def chunks(text, *args, **kwargs):
            if not isinstance(text, str) or len(text) <= chunk and stream.__dict__.get("_fngw_buffered", 0) < chunk:
                if isinstance(text, str):
                    stream.__dict__["_fngw_buffered"] = stream.__dict__.get("_fngw_buffered", 0) + len(text)
                return write(text, *args, **kwargs)
            for start in range(0, len(text), chunk):
                write(text[start : start + chunk], *args, **kwargs)
                stream.flush()
            stream.__dict__["_fngw_buffered"] = 0
            if not text:
                stream.flush()
            return len(text)

        return chunks

    def stream_class(base):
        def get(self):
            inner = self.__dict__.get("_fngw_write") or base.write.__get__(self)
            return guard(chunked(self, getattr(inner, "_fngw_inner", inner)), swallowed)

        def put(self, value):
            self.__dict__["_fngw_write"] = getattr(value, "_fngw_inner", value)

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

    def children(pid) -> list[str]:
        found = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    found += f.read().split()
        except OSError:
            pass
        return found

    def holds_outputs(pid: str) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return False
            return any(os.readlink(f"/proc/{pid}/fd/{fd}") in outputs for fd in (1, 2))
        except OSError:
            return False

    def earlier_writers() -> bool:
        pending = children("self")
        seen = set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            if holds_outputs(pid):
                return True
            pending += children(pid)
        return False

    def drain() -> None:
        """Let ipykernel's reader take what the cell's subprocesses wrote before the window closes."""
        for stream in (sys.stdout, sys.stderr):
            fid = getattr(stream, "_fid", None)
            deadline = time.monotonic() + 0.05
            while fid is not None and time.monotonic() < deadline:
                try:
                    waiting = int.from_bytes(fcntl.ioctl(fid, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
                except OSError:
                    break
                if not waiting:
                    break
                time.sleep(0.001)
        time.sleep(0)  # the reader thread writes what it read

    def forget_outputs() -> None:
        # IPython 9 keeps what every cell printed for its history, under the execution count, which
        # store_history=False never advances: every request's output would stay in the kernel.
        outputs_by_count = getattr(shell.history_manager, "outputs", None)
        if outputs_by_count is not None:
            outputs_by_count.clear()

    def opened(*_):
        forget_outputs()
        window["fd"] = bool(outputs) and not earlier_writers()
        window["task"] = current_task()
        window["thread"] = threading.get_ident()

    def closed(*_):
        if window["fd"]:
            drain()
        window["thread"] = None
        forget_outputs()

    shell.events.register("pre_run_cell", opened)
    shell.events.register("post_run_cell", closed)
