# mypy: ignore-errors
# (kernel-side code: it patches ipykernel's objects, whose attributes no stub describes)
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
  reads in a thread of its own, is kept while a cell runs; each cell gets fresh pipes whenever a
  process may have been created since the last ones, so processes left running by earlier cells
  write into pipes nobody reads for a response (a thread of ours discards what they write).

The streams' classes are swapped for subclasses (ipykernel checks ``isinstance``) whose ``write``
is a property: IPython 9 replaces ``stream.write`` around every cell and restores it after, and
whatever it sets is wrapped again. Nothing is kept between cells besides the window.
"""


def _fngw_output(isolate: bool, chunk: int = 1 << 18) -> None:  # noqa: C901 - one function, see below
    """``chunk``: characters, the largest piece of stream output sent as one message (256 Ki: small
    enough that a streamed response's 1 MiB buffer holds several, so a client that keeps up loses
    nothing while the previous piece is being written).

    One long function on purpose: it runs as a cell in the user's namespace, where its helpers must
    not appear, so they are closures over the state they share (the window, the pipes)."""
    import asyncio
    import fcntl
    import os
    import sys
    import termios
    import threading
    import time
    import traceback

    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "events") or not hasattr(shell, "display_pub"):
        return  # not IPython: nothing to hook into (docs/notebooks.md says what then holds)
    window: dict = {"thread": None, "task": None, "cpu": None, "forks": -1}
    MARK = "\x00fngw-drain\x00"  # written behind a cell's descriptor output, see drain()
    SWAP = "\x00fngw-swap-"  # + generation + -old/-new + NUL: one into each pipe of a swap (fresh_pipes)
    drained: dict = {}  # id(stream) -> threading.Event, set when its reader hands MARK on
    swapped: dict = {}  # id(stream) -> threading.Event, set when its reader hands SWAP on
    readers: dict = {}  # ipykernel's reader thread -> its stream
    old_readers: dict = {}  # id(stream) -> read end of its replaced pipe, until its reader lets go
    discarders = [0]  # discard threads started
    generation: dict = {}  # id(stream) -> how many times its pipe was replaced

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
        # ipykernel's reader of a pipe: only once it has let go of the previous pipe (fresh_pipes)
        stream = readers.get(threading.current_thread())
        return stream is not None and swapped[id(stream)].is_set()

    def unwrap(method):
        while getattr(method, "_fngw_inner", None) is not None:
            method = method._fngw_inner
        return method

    # The check and the write happen under one lock that closing the window also takes: ipykernel
    # picks the parent header inside write(), so a reader thread that passed ours() just before a
    # cell ended, and wrote after the next cell had begun, would file the old cell's bytes under the
    # new cell's header. Threads that cannot be ours never take the lock (ipykernel's IO thread must
    # never wait on it: a write that flushes waits for that thread while holding the lock).
    gate = threading.RLock()

    def guard(method, dropped=None):
        def guarded(*args, **kwargs):
            if ours():
                with gate:
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
            if isinstance(text, str) and SWAP in text and id(stream) in swapped:
                generation_now = generation[id(stream)]
                if f"{SWAP}{generation_now}-old\x00" in text:
                    let_go(stream)  # through the old pipe: the chunk is the old pipe's, nobody's
                elif f"{SWAP}{generation_now}-new\x00" in text:
                    let_go(stream)  # first thing in the new pipe: what follows is the cell's
                    rest = text.split(f"{SWAP}{generation_now}-new\x00", 1)[1]
                    if rest:
                        noticing(rest, *args, **kwargs)  # it may hold a drain marker too
                return len(text)
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

    def refuse_exit() -> None:
        # exit() and quit() ask the client to stop the kernel, and ipykernel then exits by itself:
        # a pool kernel would die under the next request. Raised instead, as sys.exit() is.
        raise SystemExit("exit()")

    shell.ask_exit = refuse_exit
    shell.display_pub.publish = guard(shell.display_pub.publish)
    shell.display_pub.clear_output = guard(shell.display_pub.clear_output)

    # The descriptors are shared by every thread, and a cell's pipes are the current ones: a
    # thread of an earlier cell that writes there, or starts a process that inherits them, would
    # write into the running cell's response. What the standard library offers for that is
    # guarded: sys.__stdout__/__stderr__ (print(file=...), logging handlers) and the processes
    # subprocess and os.system start, whose inherited output goes to /dev/null unless the cell's
    # own thread starts them.
    def cell_thread() -> bool:
        return window["thread"] == threading.get_ident() and current_task() is window["task"]

    class GuardedStdStream:
        def __init__(self, stream):
            self._stream = stream

        def write(self, text):
            return self._stream.write(text) if cell_thread() else len(text)

        def __getattr__(self, name):
            return getattr(self._stream, name)

    for name in ("__stdout__", "__stderr__"):
        if getattr(sys, name, None) is not None:
            setattr(sys, name, GuardedStdStream(getattr(sys, name)))

    import subprocess

    popen_init = subprocess.Popen.__init__

    def quiet_unless_cell(self, *args, **kwargs):
        if not cell_thread():
            for stream in ("stdout", "stderr"):
                if kwargs.get(stream) is None:
                    kwargs[stream] = subprocess.DEVNULL
        return popen_init(self, *args, **kwargs)

    subprocess.Popen.__init__ = quiet_unless_cell
    system = os.system

    def quiet_system(command):
        if cell_thread():
            return system(command)
        code = subprocess.call(command, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return code << 8 if code >= 0 else -code  # os.system's wait status

    os.system = quiet_system

    # Descriptor output (subprocesses, C libraries) reaches ipykernel through a pipe read by a
    # thread of its own. A process started by one cell and still running writes into that pipe
    # during later cells, and nothing in the bytes says whose they are. So a cell gets a fresh
    # pipe whenever a process may have been created since the last one was made: processes of
    # earlier cells keep the old pipe, which a drainer thread reads and discards until its last
    # writer exits (writers never block). /proc/stat's count of processes created tells cheaply
    # whether any was (a busy machine only costs more swaps).
    pipes = [(s, s.__dict__.get("_original_stdstream_fd")) for s in (sys.stdout, sys.stderr)]
    pipes = [(s, fd) for s, fd in pipes if fd is not None and getattr(s, "_fid", None) is not None]
    drained.update({id(s): threading.Event() for s, _ in pipes})
    swapped.update({id(s): threading.Event() for s, _ in pipes})
    generation.update({id(s): 0 for s, _ in pipes})
    for event in swapped.values():
        event.set()  # no pipe replaced yet
    readers.update({s.watch_fd_thread: s for s, _ in pipes if getattr(s, "watch_fd_thread", None) is not None})

    def forks() -> int:
        """Processes and threads created on this machine since boot, less our own discard threads
        (else every swap would cause the next)."""
        try:
            with open("/proc/stat", "rb") as f:
                line = next((line for line in f if line.startswith(b"processes ")), b"processes -1")
            return int(line.split()[1]) - discarders[0]
        except (OSError, ValueError):
            return -1

    def close_strays() -> None:
        """ipykernel keeps its own copy of each pipe's write end open; the old pipes must reach end
        of file once their last outside writer exits, so the copies go (fd 1 and 2 stay)."""
        try:
            names = {os.readlink(f"/proc/self/fd/{fd}") for _, fd in pipes}
            keep = {fd for _, fd in pipes} | {stream._fid for stream, _ in pipes}
            for entry in os.listdir("/proc/self/fd"):
                fd = int(entry)
                if fd in keep or os.readlink(f"/proc/self/fd/{fd}") not in names:
                    continue
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    flags = int(next(line for line in info if line.startswith("flags:")).split()[1], 8)
                if flags & os.O_ACCMODE == os.O_WRONLY:  # a write end (both ends share the pipe's name)
                    os.close(fd)
        except (OSError, StopIteration, ValueError):
            pass

    def discard(fd: int) -> None:
        try:
            while os.read(fd, 1 << 16):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)

    def fresh_pipes() -> None:
        for stream, fd in pipes:
            reader, writer = os.pipe()
            old_writer, old_reader = os.dup(fd), os.dup(stream._fid)
            let_go(stream)  # a pipe replaced before whose SWAP the thread never read
            old_readers[id(stream)] = old_reader
            swapped[id(stream)].clear()  # until the thread hands SWAP on, its output is the old pipe's
            generation[id(stream)] += 1
            token = f"{SWAP}{generation[id(stream)]}"
            os.dup2(writer, fd)  # the kernel and the processes it starts from now on write here
            os.dup2(reader, stream._fid)  # ipykernel's thread reads here from its next read on
            os.close(writer)
            os.close(reader)
            # A token into each pipe: blocked on the old one, the thread wakes with its token; busy
            # when the pipes were replaced, it finds the new one's first thing in the new pipe.
            # Either way it then reads only the new pipe, and ours() ignores it until then.
            os.write(old_writer, f"{token}-old\x00".encode())
            os.close(old_writer)
            os.write(fd, f"{token}-new\x00".encode())

    def let_go(stream) -> None:
        """ipykernel's reader of ``stream`` has left its old pipe: from now on a thread of ours
        reads and discards the old pipe (its writers never block), and the reader's output counts."""
        old_reader = old_readers.pop(id(stream), None)
        if old_reader is not None:
            discarders[0] += 1  # counted before the thread exists: see forks()
            threading.Thread(target=discard, args=(old_reader,), name="fngw-discard", daemon=True).start()
        swapped[id(stream)].set()

    # ipykernel's thread may still hold what a subprocess wrote just before the cell ended when the
    # window closes. Writing a marker behind it and waiting until the thread hands the marker on
    # proves everything before it was handed on. Only cells during which a reader ran pay for it:
    # each reader's CPU clock shows whether it woke up.
    clocks = []
    for thread in readers:
        try:
            clocks.append(time.pthread_getcpuclockid(thread.ident))
        except (AttributeError, OSError, TypeError):
            clocks = None  # cannot tell: drain after every cell
            break

    def readers_cpu():
        try:
            return None if clocks is None else [time.clock_gettime_ns(c) for c in clocks]
        except OSError:  # seen now and then (EINVAL) for a live thread: unknown, so drain
            return None

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

    close_strays()
    window["forks"] = forks()

    def forget_outputs() -> None:
        # IPython 9 keeps what every cell printed for its history, under the execution count, which
        # store_history=False never advances: every request's output would stay in the kernel.
        outputs_by_count = getattr(shell.history_manager, "outputs", None)
        if outputs_by_count is not None:
            outputs_by_count.clear()

    def opened(*_):
        try:
            forget_outputs()
            created = forks()
            if pipes and (created != window["forks"] or created < 0):
                fresh_pipes()
            window["forks"] = created
            window["cpu"] = readers_cpu()
        except Exception:  # never into a response: the cell runs with the pipes it has
            window["cpu"] = None
            traceback.print_exc(file=sys.__stderr__)
        # Opened only now that the pipes are fresh: opened before, a reader could hand on what a
        # process of an earlier cell wrote into the old pipe as this cell's (seen under load).
        window["task"] = current_task()
        window["thread"] = threading.get_ident()

    def closed(*_):
        try:
            drain()
            for stream, _ in pipes:
                if not swapped[id(stream)].is_set():  # the reader never read SWAP: it was not blocked
                    let_go(stream)  # on the old pipe when it was replaced, so it is on the new one
            forget_outputs()
        except Exception:
            traceback.print_exc(file=sys.__stderr__)
        finally:
            with gate:  # after any write that passed ours() has reached ipykernel's buffer
                window["thread"] = None

    shell.events.register("pre_run_cell", opened)
    shell.events.register("post_run_cell", closed)
