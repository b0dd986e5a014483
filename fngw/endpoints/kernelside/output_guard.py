"""Run in every pool kernel (Python/IPython) before its seed cells: only what the running request's
cell produces reaches iopub; everything else the kernel emits is dropped at the source.

ipykernel tags output with the parent header of the request being executed *now*, whatever
produced it (ipykernel 6), or with it for every thread the cell did not start through asyncio
(ipykernel 7: threads do not inherit context variables). A thread started by one request that
prints a second later therefore lands in another client's response. The rule enforced here:

- output (stdout, stderr, ``display``, ``clear_output``) is kept only while a cell runs
  (``pre_run_cell`` to ``post_run_cell``), and only from the thread and asyncio task that run it;
- output written to the process's file descriptors (subprocesses, C libraries), which ipykernel
  reads in a thread of its own, is kept while a cell runs unless a process left running by an
  earlier cell still holds those descriptors: then nobody can tell whose it is, and it is dropped.

The streams' classes are swapped for subclasses (ipykernel checks ``isinstance``) whose ``write``
is a property: IPython 9 replaces ``stream.write`` around every cell and restores it after, and
whatever it sets is wrapped again. The guard keeps no state between cells besides its window.
"""


def _fngw_install_output_guard() -> None:
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

    def guarded_stream_class(base):
        def get(self):
            return guard(self.__dict__.get("_fngw_write") or base.write.__get__(self), swallowed)

        def put(self, value):
            self.__dict__["_fngw_write"] = getattr(value, "_fngw_inner", value)

        def delete(self):
            self.__dict__.pop("_fngw_write", None)

        namespace = {"write": property(get, put, delete), "__module__": base.__module__}
        return type(base.__name__, (base,), namespace)

    for stream in (sys.stdout, sys.stderr):
        stream.__dict__.pop("write", None)
        stream.__class__ = guarded_stream_class(type(stream))
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


_fngw_install_output_guard()
del _fngw_install_output_guard
