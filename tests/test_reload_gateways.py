"""Reloading on change with real gateways, continued (tests/test_reload.py has the watcher's own
tests and `fngw serve --reload` on a terminal): `server.watch: true` under gunicorn, and `fngw serve
FOLDER --reload` following its folder. A file of its own so the two test processes share the work."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from conftest import write_notebook
from gateway import Gateway, children_of, gateway_env, start_serve
from test_reload import SWITCH_SECONDS, _Caller, _manifest


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_server_watch_reloads_a_manifest_edit_and_keeps_serving_through_a_broken_one(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /a\nprint('a')"])
    write_notebook(tmp_path / "other.ipynb", ["# GET /b\nprint('b')"])
    manifest = _manifest(tmp_path)
    with Gateway(env=gateway_env(FNGW_MANIFEST=str(manifest))) as gateway:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        assert gateway.request("GET", "/a")[2] == b"a\n"
        manifest.write_text(manifest.read_text() + "  other: {path: other.ipynb, mount: /other}\n")
        caller = _Caller(gateway, "/other/b")
        caller.first(b"b\n", 0)
        manifest.write_text(manifest.read_text() + "defaults: {timeout: soon}\n")
        deadline = time.monotonic() + 30
        while "still serving the last valid version" not in gateway.output and time.monotonic() < deadline:
            time.sleep(0.1)
        assert re.search(r"fngw\.yaml:6:\d+: error", gateway.output), gateway.output
        time.sleep(1)
        answers = caller.finish()
        # The old workers answer 404 until they stop, a moment after the new ones are ready.
        first = next(at for at, _, body in answers if body == b"b\n")
        assert all(status == 200 for at, status, _ in answers if at > first + SWITCH_SECONDS), answers[-5:]
        assert gateway.request("GET", "/a")[2] == b"a\n"
        assert gateway.output.count("still serving the last valid version") == 1
        master = gateway.proc.pid
        watcher = [pid for pid in children_of(master) if b"fngw.server.watch" in _cmdline(pid)]
        assert len(watcher) == 1
    assert gateway.proc.returncode == 0, gateway.output
    assert not Path(f"/proc/{watcher[0]}").exists()  # the master stopped its watcher


def test_serve_a_folder_mounts_each_notebook_at_its_name(tmp_path):
    write_notebook(tmp_path / "Sales.ipynb", ["# GET /total\nprint(3)"])
    write_notebook(tmp_path / "score.ipynb", ["# GET /total\nprint(4)"])
    write_notebook(tmp_path / "notes.ipynb", ["print('no endpoint')"])
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    peer, proc = start_serve(str(tmp_path), "--reload")
    try:
        peer.wait_ready("/_fngw/ready", timeout=90)
        assert peer.request("GET", "/sales/total")[2] == b"3\n"
        assert peer.request("GET", "/score/total")[2] == b"4\n"
        assert peer.request("GET", "/total")[0] == 404
        # With --reload the folder is followed: a renamed notebook is served under its new name.
        (tmp_path / "score.ipynb").rename(tmp_path / "points.ipynb")
        caller = _Caller(peer, "/points/total")
        caller.first(b"4\n", 0, timeout=60)
        caller.finish()
        time.sleep(SWITCH_SECONDS)  # the old workers may answer for that long
        assert peer.request("GET", "/score/total")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, peer.describe()
    said = peer.describe()
    assert re.search(r"/sales +\S*Sales\.ipynb", said) and "/score" in said, said  # each name with its file
    assert re.search(r"skipping \S*broken\.ipynb: ", said), said  # an unreadable notebook is named
