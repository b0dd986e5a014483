"""gunicorn hooks; ``gunicorn.conf.py`` at the repository root wires them in.

The master imports this module: it imports only ``fngw.master`` and the standard library (see there).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fngw.master import metrics_dir
from fngw.master.reaper import reap_runtime_dir, reap_unkept
from fngw.master.runtime import InstancePaths
from fngw.server.startup import EXIT_APP_LOAD_ERROR, manifest_path

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker


def validate_manifest(describe: Path | None = None) -> str | None:
    """`fngw validate --strict` on the manifest, in a child process because checking kernelspecs
    imports jupyter_client, which the master must not. None when valid, else what to print. With
    ``describe``, a valid manifest's description is written there (``fngw validate --describe``)."""
    path = manifest_path()
    extra = ["--describe", str(describe)] if describe is not None else []
    check = subprocess.run(
        [sys.executable, "-m", "fngw", "validate", "--strict", "--format", "text", *extra, str(path)],
        capture_output=True,
        text=True,
    )
    if check.returncode == 0:
        return None
    if check.returncode == 2 and not check.stdout:  # unreadable: say which file and why
        source = "$FNGW_MANIFEST" if os.environ.get("FNGW_MANIFEST") else "default"
        return f"fngw: cannot read the manifest {path} ({source}): {check.stderr.strip()}"
    return check.stdout.rstrip()


def on_starting(server: Arbiter) -> None:
    """In the master, before any worker forks: refuse to start on a manifest that does not validate,
    printing `fngw validate --strict` output once instead of once per worker."""
    instance = InstancePaths(os.getpid())
    instance.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    description = instance.root / "deployment.json"
    problems = validate_manifest(describe=description)
    if problems is not None:
        print(problems, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_APP_LOAD_ERROR)
    # One metrics folder for the instance: workers write there, any of them renders the sum.
    metrics_dir.prepare(instance.metrics)
    _skip_the_reload_wait(server)
    if json.loads(description.read_text(encoding="utf-8")).get("watch"):
        _start_watcher(server, instance)


def _skip_the_reload_wait(server: Arbiter) -> None:
    """gunicorn's ``Arbiter.reload`` ends by waiting up to ``graceful_timeout`` for the old workers
    to exit (it stopped them itself, and must not signal them twice). fngw stops them itself, once
    the new ones are ready, and a worker a reload replaces may drain for minutes: the master would
    handle no signal meanwhile (a SIGTERM then waited 8 s, and saves queued behind each other). So
    the master's graceful_timeout reads 0 for that wait only: set once the reload has forked its
    workers (they keep the real value), restored as the reload returns."""
    reload, manage_workers = server.reload, server.manage_workers

    def managing_workers() -> None:
        manage_workers()
        if getattr(server, "fngw_skip_wait", False):  # set by on_reload: the spawns are done
            server.fngw_skip_wait = False
            server.fngw_graceful_timeout = server.cfg.graceful_timeout
            server.cfg.set("graceful_timeout", 0)

    def reloading() -> None:
        try:
            reload()
        finally:
            server.fngw_skip_wait = False
            saved = getattr(server, "fngw_graceful_timeout", None)
            if saved is not None:
                server.cfg.set("graceful_timeout", saved)
                server.fngw_graceful_timeout = None

    server.manage_workers = managing_workers
    server.reload = reloading


_watcher: subprocess.Popen[bytes] | None = None


def _start_watcher(server: Arbiter, instance: InstancePaths) -> None:
    """server.watch: a process that SIGHUPs this master when the deployment's files change
    (fngw.server.watch); stopped by PID in on_exit."""
    global _watcher
    command = [sys.executable, "-m", "fngw.server.watch", "--master", str(os.getpid())]
    if instance.serve_spec.exists():  # `fngw serve FOLDER --reload`: the manifest follows the folder
        command.append("--regenerate")
    _watcher = subprocess.Popen([*command, str(manifest_path())])
    server.log.info("fngw: server.watch: reloading when the manifest, a notebook or a schema file changes")


def _stop_watcher() -> None:
    global _watcher
    if _watcher is None:
        return
    _watcher.terminate()
    try:
        _watcher.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _watcher.kill()
        _watcher.wait()
    _watcher = None


def on_reload(server: Arbiter) -> None:
    """In the master on SIGHUP, before gunicorn replaces the workers (which re-read the manifest and
    notebooks as they start). An invalid manifest must not take the gateway down: gunicorn offers
    no way to cancel a reload, so this one spawns no new worker and the old ones keep serving.

    With a valid manifest, gunicorn would stop the old workers as soon as it has forked the new
    ones, leaving the instance without warm kernels until the new pools have started. Instead the
    old workers keep serving until every new worker says its pools are up (``InstancePaths.ready``)."""
    server.fngw_skip_wait = True  # see _skip_the_reload_wait
    mark = InstancePaths(os.getpid()).validated
    if mark.exists():  # the watcher checked the deployment just now (it checks faster: warm imports)
        mark.unlink(missing_ok=True)
        problems = None
    else:
        problems = validate_manifest()
    if problems is None:
        server.log.info("fngw: manifest valid; new workers start with it, old ones serve until they are ready")
        # The old workers hand their kernel API kernels over to the new ones rather than stop them.
        handover = InstancePaths(os.getpid()).handover
        handover.mkdir(mode=0o700, parents=True, exist_ok=True)
        for pid in server.WORKERS:
            (handover / str(pid)).touch()
        _keep_old_workers_until_new_ready(server)
        return
    for line in problems.splitlines():
        server.log.error("%s", line)
    server.log.error("fngw: reload refused, the manifest is not valid; the running workers keep serving")
    server.cfg.set("workers", 0)  # read by the reload's spawn loop only
    # gunicorn's reload reset the count to the configured one: put back the one fngw keeps, which
    # counts the workers of an earlier reload still starting, not the old ones it has stopped and
    # that still drain (counted, they would be replaced as they exit).
    server.num_workers = getattr(server, "fngw_num_workers", len(server.WORKERS))


def _keep_workers(server: Arbiter, count: int) -> None:
    """gunicorn's worker count, and fngw's copy of it, which a reload refused puts back (gunicorn's
    reload resets the count to the configured one first)."""
    server.num_workers = server.fngw_num_workers = count


READY_TIMEOUT = 120.0  # after this, the old workers go even if the new ones are not ready


def _keep_old_workers_until_new_ready(server: Arbiter) -> None:
    wanted = server.num_workers
    old = set(server.WORKERS)
    _keep_workers(server, wanted + len(old))  # gunicorn's reload then stops no old worker
    instance = InstancePaths(os.getpid())
    folder = instance.ready
    instance.reloading.touch()  # the watcher signals no other reload meanwhile
    # A later reload takes over: this one's thread must then leave the worker count alone.
    generation = server.fngw_reload_generation = getattr(server, "fngw_reload_generation", 0) + 1

    def abandoned(new: set[int]) -> bool:
        failed = [pid for pid in new if (instance.failed / str(pid)).exists()]
        if not failed:
            return False
        # The files broke again after this reload was checked (a new worker could not load them),
        # or its kernels cannot start: such a worker idles (fngw.wsgi, fngw.server.worker). The old
        # workers serve on, and every new one goes: gunicorn's own worker management stops them,
        # as the workers it has too many of, because they are made its oldest; had fngw signalled
        # them instead, gunicorn would have started others in their places, which would idle too,
        # one more set at every broken save. The old workers keep their handover marks: while they
        # are there, a worker gunicorn starts on the broken files idles rather than exits with the
        # load error that would stop the whole gateway (fngw.wsgi).
        server.log.error("fngw: reload abandoned (worker %s could not load the deployment); still serving", failed[0])
        for pid, worker in list(server.WORKERS.items()):
            if pid in new:
                worker.age = -1  # manage_workers stops the oldest first
        _keep_workers(server, wanted)  # those serving before (older draining ones go too)
        return True

    def wait_then_retire() -> None:
        try:
            retire()
        finally:
            if server.fngw_reload_generation == generation:
                instance.reloading.unlink(missing_ok=True)

    def retire() -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            new = set(server.WORKERS) - old
            if server.fngw_reload_generation != generation or abandoned(new):
                return
            if len(new) >= wanted and all((folder / str(pid)).exists() for pid in new):
                break
            time.sleep(0.1)
        else:
            server.log.warning("fngw: new workers not ready after %ss; stopping the old ones anyway", READY_TIMEOUT)
        if server.fngw_reload_generation == generation:
            _keep_workers(server, wanted)
            # Stop them now: the master's own loop would only in up to graceful_timeout seconds
            # (gunicorn's reload waits that long for old workers to go, without managing workers),
            # and meanwhile they would answer every other request with the old notebooks. Signals
            # only: gunicorn's WORKERS table is the master thread's to change.
            for pid in old:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    threading.Thread(target=wait_then_retire, name="fngw-reload", daemon=True).start()


JOB_GRACE_MARGIN = 1.5  # seconds kept from the graceful timeout to stop kernels before gunicorn's SIGKILL


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """In the worker, as it exits: let running jobs finish within what is left of the graceful
    timeout (gunicorn's drain waits for connections only, not for jobs), then shut its kernels
    down (fngw's worker keeps its application)."""
    close = getattr(getattr(worker, "fngw_application", None), "close", None)
    if close is None:
        return
    stopping_since = getattr(worker, "fngw_stopping_since", None)
    grace = 0.0
    if stopping_since is not None:
        grace = worker.cfg.graceful_timeout - (time.monotonic() - stopping_since) - JOB_GRACE_MARGIN
    hand_over = (InstancePaths(os.getppid()).handover / str(os.getpid())).exists()  # replaced by a reload
    close(grace=max(0.0, grace), hand_over=hand_over)


def child_exit(server: Arbiter, worker: Worker) -> None:
    """In the master, after a worker exited (even by SIGKILL): kill the process groups of any kernels
    it left running and remove their connection files."""
    metrics_dir.forget_worker(worker.pid)
    instance = InstancePaths(os.getpid())
    (instance.ready / str(worker.pid)).unlink(missing_ok=True)
    (instance.handover / str(worker.pid)).unlink(missing_ok=True)
    (instance.failed / str(worker.pid)).unlink(missing_ok=True)
    killed = reap_runtime_dir(instance.worker(worker.pid))
    # Its kernel API kernels live on for the other workers, except those it was still starting
    # or held in reserve (prewarmed), which no record names.
    killed += reap_unkept(instance.kernel_api_kernels, worker.pid)
    if killed:
        # While the whole gateway stops (gunicorn has closed its listeners), a worker stopped at once
        # (Ctrl-C, SIGQUIT) leaves its kernels to this reaper by design: no warning then.
        log = server.log.info if not server.LISTENERS else server.log.warning
        log("worker %s left %d kernel(s) running; killed process groups %s", worker.pid, len(killed), killed)


def on_exit(server: Arbiter) -> None:
    """In the master, as it exits: kill the kernel API kernels no worker stopped (they outlive
    workers, not the instance), then remove the instance folder."""
    _stop_watcher()
    instance = InstancePaths(os.getpid())
    killed = reap_runtime_dir(instance.kernel_api_kernels)
    if killed:
        server.log.info("fngw: stopped %d kernel API kernel(s) left running", len(killed))
    shutil.rmtree(instance.root, ignore_errors=True)
