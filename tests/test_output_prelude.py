"""The output prelude inside a real ipykernel: what a pool kernel keeps of its output, and that the
prelude holds over many cells (IPython 9 re-wraps ``stream.write`` around every cell)."""

from __future__ import annotations

import os
import re

import pytest

from fngw.kernels import Kernel, SeedCell, cells_prelude, output_prelude

# ipykernel does not capture file-descriptor output when it sees PYTEST_CURRENT_TEST.
ENV = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    prelude = output_prelude("python", isolate=True)
    kernel = Kernel("python3", seed=[SeedCell(-1, prelude)], runtime_dir=tmp_path_factory.mktemp("rt"), env=ENV)
    kernel.start()
    yield kernel
    kernel.shutdown()


def test_the_wrappers_do_not_pile_up_over_many_cells(isolated):
    for _ in range(1500):  # about 3 wrapper frames a cell would pass the recursion limit
        result = isolated.execute("print('x')", 30)
        assert (result.status, result.stdout) == ("ok", "x\n")
    assert isolated.execute("import sys; print(len(get_ipython().history_manager.outputs))", 30).stdout == "0\n"


@pytest.mark.parametrize(
    "leftover",
    [
        "subprocess.Popen(['sh', '-c', 'sleep 0.3; echo LEAK'])",  # exits during the next cell
        "os.system('(sleep 0.3; echo LEAK; sleep 2) &')",  # a daemon: not our descendant any more
        "subprocess.Popen(['sh', '-c', 'sleep 0.3; echo LEAK'], start_new_session=True)",
        "subprocess.Popen(['sh', '-c', 'for i in $(seq 100); do echo LEAK $i; sleep 0.01; done'])",
    ],
)
def test_processes_left_by_a_cell_never_write_into_a_later_cell(isolated, leftover):
    assert isolated.execute(f"import os, subprocess; _ = {leftover}", 30).ok
    later = isolated.execute("import time; _ = os.system('echo mine'); time.sleep(1); print('done')", 30)
    assert later.stdout == "mine\ndone\n"


@pytest.mark.parametrize(
    "writes",
    [
        "subprocess.run(['echo', 'LEAK'])",  # a process started by a thread inherits the descriptors
        "os.system('echo LEAK')",
        "print('LEAK', file=sys.__stdout__, flush=True)",
    ],
)
def test_threads_of_earlier_cells_never_write_into_a_later_cell(isolated, writes):
    code = (
        "import os, subprocess, sys, threading, time\n"
        "def chatter():\n"
        "    for _ in range(12):\n"
        f"        time.sleep(0.1); {writes}\n"
        "threading.Thread(target=chatter, daemon=True).start()"
    )
    assert isolated.execute(code, 30).ok
    assert isolated.execute("import time; time.sleep(1); print('done')", 30).stdout == "done\n"


def test_descriptor_output_of_the_cell_itself_is_kept(isolated):
    assert isolated.execute("import os; _ = os.system('echo from the shell')", 30).stdout == "from the shell\n"
    assert isolated.execute("import os; print(os.system('exit 3'))", 30).stdout == "768\n"  # a wait status
    code = "import subprocess; print(subprocess.run(['echo', 'captured'], capture_output=True, text=True).stdout)"
    assert isolated.execute(code, 30).stdout == "captured\n\n"


def test_threads_keep_their_output_in_kernels_that_do_not_isolate(tmp_path):
    prelude = output_prelude("python", isolate=False)
    kernel = Kernel("python3", seed=[SeedCell(-1, prelude)], runtime_dir=tmp_path, env=ENV)
    kernel.start()
    try:
        code = "import threading\nt = threading.Thread(target=lambda: print('from a thread'))\nt.start(); t.join()"
        assert kernel.execute(code, 30).stdout == "from a thread\n"
        chunks = []
        kernel.on_iopub(lambda k, m: chunks.append(len(m["content"]["text"])) if m["msg_type"] == "stream" else None)
        result = kernel.execute("print('z' * (5 << 20))", 60)
        assert len(result.stdout) == (5 << 20) + 1
        assert max(chunks) <= (1 << 20) + 1  # a 5 MiB print arrives in messages of at most 1 MiB
    finally:
        kernel.shutdown()


def test_requests_sources_are_forgotten_and_the_notebooks_kept(tmp_path):
    """IPython keeps every cell's source for tracebacks; a pool kernel runs a different cell per
    request, so without the cells prelude it grows by each request's source forever."""
    seed = [
        SeedCell(-2, cells_prelude("python", keep=8, spare=1), silent=True),
        SeedCell(0, "def helper():\n    raise ValueError('from the seed')"),
    ]
    kernel = Kernel("python3", seed=seed, runtime_dir=tmp_path, env=ENV)
    kernel.start()
    try:
        before = int(kernel.execute("import linecache; print(len(linecache.cache))", 30).stdout)
        for i in range(60):  # each a different cell, as requests are
            assert kernel.execute(f"REQUEST = {'x' * 200 + str(i)!r}; # GET /x\nprint('ok')", 30).stdout == "ok\n"
        after = int(kernel.execute("print(len(linecache.cache))", 30).stdout)
        assert after <= before + 8
        mapped = kernel.execute("print(len(get_ipython().compile._filename_map))", 30).stdout
        assert int(mapped) <= 8 + 8
        # The seed's function still shows its own line in a traceback raised from a request.
        failed = kernel.execute("REQUEST = '{}'; # GET /y\nhelper()", 30)
        assert failed.error is not None
        assert "raise ValueError('from the seed')" in _plain(failed.error.traceback)
        # A request's own failing line is shown too (its source is forgotten only afterwards).
        failed = kernel.execute("REQUEST = '{}'; # GET /z\nraise KeyError('its own line')", 30)
        assert failed.error is not None and "raise KeyError('its own line')" in _plain(failed.error.traceback)
    finally:
        kernel.shutdown()


def _plain(traceback: list[str]) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(traceback))  # without IPython's colours
