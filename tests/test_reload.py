"""Reloading on change (`fngw serve --reload`, `server.watch: true`) and readable logs on a terminal.

The fast tests drive ``SourceWatcher`` directly; the others run real gateways, edit their files
while a client keeps calling, and read what a person at a terminal would see (a pseudo-terminal).
"""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import write_notebook
from gateway import HttpPeer, children_of, free_port, gateway_env

from fngw.server.watch import SourceWatcher

FNGW = [sys.executable, "-m", "fngw"]
# After the new version first answers, the old workers may answer for about a second more: they
# finish what they accepted and gunicorn's worker loop sees the stop signal once a second.
SWITCH_SECONDS = 2.5


def _manifest(folder: Path, notebook: str = "nb.ipynb", extra: str = "") -> Path:
    path = folder / "fngw.yaml"
    path.write_text(f"version: 1\nserver: {{watch: true}}\nnotebooks:\n  nb: {{path: {notebook}}}\n{extra}")
    return path


class _Reloads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_the_watcher_reloads_on_a_change_of_content_only(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    reloads, out = _Reloads(), io.StringIO()
    watcher = SourceWatcher(_manifest(tmp_path), reloads, out)
    assert watcher.files == {tmp_path / "fngw.yaml", tmp_path / "nb.ipynb"}
    assert watcher.folders() == {tmp_path}

    (tmp_path / "nb.ipynb").touch()  # saved without a change (an autosave)
    (tmp_path / "other.txt").write_text("not a source")
    assert not watcher.on_change([str(tmp_path / "nb.ipynb"), str(tmp_path / "other.txt")])

    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(2)"])
    assert watcher.on_change([str(tmp_path / "nb.ipynb")]) and reloads.count == 1
    assert "nb.ipynb changed; reloading" in out.getvalue()


def test_a_broken_edit_is_reported_once_with_its_place_and_does_not_reload(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    manifest = _manifest(tmp_path)
    reloads, out = _Reloads(), io.StringIO()
    watcher = SourceWatcher(manifest, reloads, out)

    manifest.write_text(manifest.read_text() + "defaults: {timeout: soon}\n")
    assert not watcher.on_change([str(manifest)])
    report = out.getvalue()
    assert "not valid; still serving the last valid version" in report
    assert re.search(r"fngw\.yaml:5:\d+: error", report), report  # file:line:col
    # The same broken state again (another save): not printed twice.
    manifest.write_text(manifest.read_text() + "\n")
    assert not watcher.on_change([str(manifest)])
    assert out.getvalue() == report and reloads.count == 0

    manifest.write_text(manifest.read_text().replace("soon", "5s"))
    assert watcher.on_change([str(manifest)]) and reloads.count == 1


def test_an_edit_that_breaks_a_cell_keeps_the_running_version_but_an_old_break_does_not(tmp_path):
    # Kernel Gateway serves a cell that cannot compile (its requests answer 500), so validate only
    # warns of one; but a typo saved while developing must not replace the version that works.
    notebook = tmp_path / "nb.ipynb"
    write_notebook(notebook, ["# GET /a\nprint(1)", "# GET /kept\nprint('x' 2)"])
    reloads, out = _Reloads(), io.StringIO()
    watcher = SourceWatcher(_manifest(tmp_path), reloads, out)

    write_notebook(notebook, ["# GET /a\nprint(2)", "# GET /kept\nprint('x' 2)"])  # the old break: serve on
    assert watcher.on_change([str(notebook)]) and reloads.count == 1

    write_notebook(notebook, ["# GET /a\nprint(3", "# GET /kept\nprint('x' 2)"])
    assert not watcher.on_change([str(notebook)]) and reloads.count == 1
    report = out.getvalue()
    assert re.search(r"nb\.ipynb:\d+:\d+: error: cells\[0\]\.source: SyntaxError: .*\[cell-syntax\]", report), report
    assert "print('x' 2)" not in report  # only what the edit broke

    write_notebook(notebook, ["# GET /a\nprint(3)", "# GET /kept\nprint('x' 2)"])
    assert watcher.on_change([str(notebook)]) and reloads.count == 2


def test_a_manifest_deleted_for_a_while_is_a_broken_version_not_the_watchers_end(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    manifest = _manifest(tmp_path)
    text = manifest.read_text()
    reloads, out = _Reloads(), io.StringIO()
    watcher = SourceWatcher(manifest, reloads, out)
    manifest.unlink()  # a git checkout, say
    assert not watcher.on_change([str(manifest)]) and reloads.count == 0
    assert "fngw.yaml:1:1: error: $: cannot read the manifest: No such file or directory" in out.getvalue()
    manifest.write_text(text.replace("nb: {path: nb.ipynb}", "nb: {path: nb.ipynb, mount: /v2}"))
    assert watcher.on_change([str(manifest)]) and reloads.count == 1


def test_the_watcher_survives_a_fault_of_its_own(tmp_path, capsys):
    from fngw.server import watch

    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    watcher = SourceWatcher(_manifest(tmp_path), _Reloads(), io.StringIO())
    stop = threading.Event()

    def broken(paths):
        stop.set()  # one batch, then stop
        raise RuntimeError("a bug")

    watcher.on_change = broken
    runner = threading.Thread(target=watch.run, args=(watcher, os.getppid(), stop))
    runner.start()
    time.sleep(0.5)
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(2)"])
    runner.join(10)
    assert not runner.is_alive()
    assert "still watching" in capsys.readouterr().err


def test_a_problem_in_fngw_serves_own_manifest_is_said_without_a_place_in_it(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    manifest = _manifest(tmp_path)
    reloads, out = _Reloads(), io.StringIO()
    watcher = SourceWatcher(manifest, reloads, out)
    watcher.label, watcher.generated_by = "(fngw serve's manifest)", "fngw serve"
    (tmp_path / "nb.ipynb").unlink()
    assert not watcher.on_change([str(tmp_path / "nb.ipynb")])
    said = out.getvalue()
    assert "fngw serve: error: nb.ipynb: file not found [notebook-unreadable]" in said, said
    assert "manifest):" not in said


def test_turning_watch_off_reloads_once_more_then_stops_watching(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    manifest = _manifest(tmp_path)
    reloads, out = _Reloads(), io.StringIO()
    watcher = SourceWatcher(manifest, reloads, out)
    manifest.write_text(manifest.read_text().replace("watch: true", "watch: false"))
    assert watcher.on_change([str(manifest)]) and reloads.count == 1  # the new version applies
    assert watcher.stopped and "no longer watching" in out.getvalue()


def test_a_change_during_a_reload_waits_for_it_and_reloads_once(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    reloads, out, busy = _Reloads(), io.StringIO(), [True]
    watcher = SourceWatcher(_manifest(tmp_path), reloads, out, busy=lambda: busy[0])
    for n in (2, 3, 4):  # saves while the master is reloading: none signals it
        write_notebook(tmp_path / "nb.ipynb", [f"# GET /a\nprint({n})"])
        assert not watcher.on_change([str(tmp_path / "nb.ipynb")])
    assert not watcher.retry() and reloads.count == 0
    assert out.getvalue().count("reloading once the reload under way ends") == 1
    busy[0] = False
    assert watcher.retry() and reloads.count == 1  # one reload, of the last version
    assert not watcher.retry() and reloads.count == 1


def test_the_watcher_follows_the_files_a_new_version_reads(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)"])
    write_notebook(tmp_path / "more" / "second.ipynb", ["# GET /b\nprint(2)"])
    schema = tmp_path / "schemas" / "item.json"
    schema.parent.mkdir()
    schema.write_text('{"type": "object"}')
    manifest = _manifest(tmp_path)
    watcher = SourceWatcher(manifest, _Reloads(), io.StringIO())
    manifest.write_text(
        manifest.read_text()
        + "  second:\n    path: more/second.ipynb\n    mount: /second\n"
        + "    endpoints:\n      GET /b:\n        responses:\n"
        + "          '200': {content_type: application/json, schema: {$ref: schemas/item.json}}\n"
    )
    assert watcher.on_change([str(manifest)]), watcher.out.getvalue()
    assert {tmp_path / "more" / "second.ipynb", schema} <= watcher.files
    assert tmp_path / "more" in watcher.folders() and tmp_path / "schemas" in watcher.folders()


class _Caller:
    """Calls an endpoint in a loop from a thread, keeping every answer (or failure) in order."""

    def __init__(self, peer: HttpPeer, path: str):
        self.peer, self.path = peer, path
        self.answers: list[tuple[float, int, bytes]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                status, _, body = self.peer.request("GET", self.path, timeout=30)
            except OSError as exc:
                status, body = 0, repr(exc).encode()
            self.answers.append((time.monotonic(), status, body))
            time.sleep(0.02)

    def first(self, body: bytes, since: float, timeout: float = 60) -> float:
        """Seconds from ``since`` to the first answer ``body``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, _, got in list(self.answers):
                if at >= since and got == body:
                    return at - since
            time.sleep(0.02)
        raise AssertionError(f"never answered {body!r}: last {self.answers[-3:]}\n{self.peer.describe()[-4000:]}")

    def finish(self) -> list[tuple[float, int, bytes]]:
        self.stop.set()
        self.thread.join(30)
        return self.answers


class _Terminal:
    """A pseudo-terminal as the gateway's stdout and stderr, read continuously (a full terminal
    buffer would block the gateway)."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.text = ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the last writer is gone
                return
            if not data:
                return
            self.text += data.decode(errors="replace")

    def close(self) -> None:
        os.close(self.slave)
        self.thread.join(10)
        os.close(self.master)


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _edit_cell(notebook: Path, old: str, new: str) -> None:
    text = notebook.read_text()
    assert old in text
    notebook.write_text(text.replace(old, new))


def test_serve_reload_serves_an_edit_without_a_failed_request_and_logs_for_people(tmp_path):
    notebook = write_notebook(tmp_path / "hello.ipynb", ["# GET /hello\nprint('one')"])
    port = free_port()
    terminal = _Terminal()
    proc = subprocess.Popen(
        [*FNGW, "serve", str(notebook), "--reload", "--port", str(port)],
        env=gateway_env(),
        stdout=terminal.slave,
        stderr=terminal.slave,
        cwd=tmp_path,
    )
    peer = HttpPeer(port, proc)
    peer.describe = lambda: terminal.text
    caller = None
    try:
        peer.wait_ready("/_fngw/ready", timeout=90)
        caller = _Caller(peer, "/hello")
        caller.first(b"one\n", 0)
        saved = time.monotonic()
        _edit_cell(notebook, "print('one')", "print('two')")
        seconds = caller.first(b"two\n", saved)
        print(f"an edit was served {seconds:.2f} s after it was saved")
        # None failed meanwhile; once the old workers are gone every answer is the new one.
        time.sleep(SWITCH_SECONDS + 0.5)
        answers = caller.finish()
        assert all(status == 200 for _, status, _ in answers), [a for a in answers if a[1] != 200][:3]
        assert {body for _, _, body in answers} == {b"one\n", b"two\n"}
        switched = saved + seconds
        late = [body for at, _, body in answers if at > switched + SWITCH_SECONDS]
        assert late and set(late) == {b"two\n"}, answers[-5:]
        old_after = [at - switched for at, _, body in answers if at > switched and body == b"one\n"]
        last = max(old_after, default=0)
        print(f"the old version answered {len(old_after)} more time(s), the last {last:.2f} s later")

        # A broken edit: reported once, with its place; the last version keeps serving.
        notebook.write_text('{"cells": [')
        deadline = time.monotonic() + 30
        while "still serving the last valid version" not in terminal.text and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        assert terminal.text.count("still serving the last valid version") == 1, terminal.text
        assert re.search(r"hello\.ipynb:\d+:\d+: error", terminal.text), terminal.text
        assert peer.request("GET", "/hello")[2] == b"two\n"
        write_notebook(notebook, ["# GET /hello\nprint('three')"])
        caller = _Caller(peer, "/hello")
        caller.first(b"three\n", time.monotonic() - 1)
        # A valid save, then a broken one while that reload's workers start: whichever version
        # they read, the gateway goes on serving (a worker that read the broken one idles and the
        # reload is abandoned), and the next valid save is served.
        write_notebook(notebook, ["# GET /hello\nprint('four')"])
        time.sleep(0.6)
        notebook.write_text('{"cells": [')
        time.sleep(2.5)
        assert proc.poll() is None, terminal.text[-3000:]
        print("abandoned" if "reload abandoned" in terminal.text else "the reload read the valid save")
        write_notebook(notebook, ["# GET /hello\nprint('five')"])
        caller.first(b"five\n", time.monotonic() - 1, timeout=90)
        # A version whose kernels cannot start (a seed cell that raises): valid to read, so the
        # reload goes ahead, then is abandoned; the last version keeps serving, the next is served.
        write_notebook(notebook, ["import fngw_test_no_such_module", "# GET /hello\nprint('six')"])
        deadline = time.monotonic() + 60
        while "its kernels cannot start" not in terminal.text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "its kernels cannot start" in terminal.text, terminal.text[-3000:]
        assert re.search(r"hello\.ipynb:\d+:\d+: pool hello: seeding", terminal.text), terminal.text[-3000:]
        assert peer.request("GET", "/hello")[2] == b"five\n"
        # The abandoned reload's worker goes: no idle worker is left for each broken save.
        deadline = time.monotonic() + 20
        while len(workers := [p for p in children_of(proc.pid) if "fngw.server.watch" not in _cmdline(p)]) != 1:
            assert time.monotonic() < deadline, workers
            time.sleep(0.1)
        write_notebook(notebook, ["# GET /hello\nprint('seven')"])
        caller.first(b"seven\n", time.monotonic() - 1, timeout=90)
        assert b"six\n" not in {body for _, _, body in caller.answers}
        assert all(status == 200 for _, status, _ in caller.finish()), [a for a in caller.answers if a[1] != 200][:3]
    finally:
        if caller is not None:
            caller.finish()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        terminal.close()
    assert code == 0, terminal.text
    # A request on a terminal: one short line a person reads.
    line = re.compile(r"^\d\d:\d\d:\d\d GET /hello 200 \d+\.\d ms pool=hello kernel=[0-9a-f]{4} id=[0-9a-f]{8}", re.M)
    assert line.search(terminal.text), terminal.text[-2000:]
    assert '"logger": "fngw.access"' not in terminal.text  # no JSON on a terminal
    assert not (Path(tempfile.gettempdir()) / f"fngw-{proc.pid}").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["missing.ipynb"], "no such notebook or folder"), (["."], "no notebook in this folder has an annotated cell")],
)
def test_serve_refuses_what_it_cannot_serve(tmp_path, arguments, message):
    result = subprocess.run([*FNGW, "serve", *arguments], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and message in result.stderr


def test_serve_names_a_bad_environment_variable_without_pointing_into_its_own_manifest(tmp_path):
    write_notebook(tmp_path / "hello.ipynb", ["# GET /hello\nprint('one')"])
    env = gateway_env(OTEL_TRACES_EXPORTER="jaeger")
    result = subprocess.run([*FNGW, "serve", "hello.ipynb"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert "fngw serve: error:" in result.stderr and "OTEL_TRACES_EXPORTER" in result.stderr, result.stderr
    assert "serve.yaml" not in result.stderr and "valid" not in result.stderr, result.stderr
