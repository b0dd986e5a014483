"""``server.watch`` and ``fngw serve --reload``: reload the gateway when its sources change.

A process of its own beside the gunicorn master (which starts it at ``on_starting`` and stops it by
PID at ``on_exit``): it watches the files the deployment was read from (``Deployment.sources``:
the manifest, its notebooks, the seed notebook, the schema files), and when one of them changes
content it checks the deployment as ``fngw validate --strict`` does. Valid: it leaves a mark in the
instance folder (so the master does not check again) and sends the master SIGHUP, which reloads
as an operator's SIGHUP does (new pools start; the old workers serve until they are ready). Not
valid: it prints the located problems once and the running version keeps serving.

Why a process, not a thread of the master: checking a deployment imports jupyter_client, nbformat
and jsonschema, which the master must not, and importing them on every save would cost a second;
kept warm here, a check takes milliseconds.

Folders are watched, not files: editors and Jupyter save by writing a new file and renaming it over
the old one, which a watch on the old file would miss.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from fngw.deployment import CheckResult, check_deployment
from fngw.manifest import Problem, render, render_generated
from fngw.master.runtime import InstancePaths
from fngw.routing import SYNTAX_RULE

PARENT_CHECK_MS = 1000  # how often a quiet watch checks that the master is still there
# Changes closer together than this are one change: a save is often several writes, and an editor
# saving every keystroke pause must not start a reload for each.
STEP_MS = 300


def fingerprint(path: Path) -> str | None:
    """The content's digest (None: unreadable or gone). Saving without a change (an autosave, a
    ``touch``) must not reload."""
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return None


class SourceWatcher:
    """Decides what a change means: reload (``reload()``), report (written to ``out``), or nothing.

    ``check`` is ``check_deployment`` (strict); ``sources`` is what a valid deployment was read from.
    """

    def __init__(
        self,
        manifest: Path,
        reload: Callable[[], None],
        out: TextIO,
        check: Callable[[Path], CheckResult] = lambda path: check_deployment(path, strict=True),
        busy: Callable[[], bool] = lambda: False,
    ):
        self.manifest = manifest.absolute()
        self.reload = reload
        self.out = out
        self.check = check
        self.busy = busy  # a reload is under way: the next one waits for it (``retry``)
        self.pending = False
        self.stopped = False  # the manifest turned server.watch off: watch no more
        self.label = _display(self.manifest)  # how problems name the manifest
        self.generated_by: str | None = None  # the command that wrote the manifest (`fngw serve`)
        self.served: set[Path] = set()  # `fngw serve FOLDER`: folders whose notebooks come and go
        self.regenerate: Callable[[], bool] | None = None  # writes the manifest again from them
        self.files: set[Path] = {self.manifest}
        self.seen: dict[Path, str | None] = {}
        self.reported: str | None = None  # the last problems printed, so a broken state prints once
        result = self._check()
        self.known_syntax = _syntax_errors(result)  # those of the version serving: no reason not to reload
        if result.deployment is not None:
            self.files |= result.deployment.sources()
        self._remember(self.files)

    def _check(self) -> CheckResult:
        """``check`` of the manifest; a manifest that cannot be read (deleted for a moment by a
        ``git checkout``, say) is a broken version like any other, not the watcher's end."""
        try:
            return self.check(self.manifest)
        except OSError as exc:
            message = f"cannot read the manifest: {exc.strerror or exc}"
            return CheckResult(None, [Problem(self.label, 1, 1, "$", message, "manifest-unreadable")])

    def folders(self) -> set[Path]:
        """The folders to watch: those of the watched files that exist, and the served folders."""
        return {path.parent for path in self.files if path.parent.is_dir()} | {f for f in self.served if f.is_dir()}

    def on_folder_change(self, paths: Iterable[str]) -> bool:
        """A notebook appeared, went or was renamed in a served folder: write the manifest again
        (its own change then reloads). True when it changed."""
        if self.regenerate is None:
            return False
        touched = [Path(p).absolute() for p in paths]
        appeared = any(p.suffix == ".ipynb" and p.parent in self.served and p not in self.files for p in touched)
        went = any(p in self.files and not p.exists() for p in touched)
        return (appeared or went) and self.regenerate()

    def _remember(self, files: Iterable[Path]) -> None:
        for path in files:
            self.seen[path] = fingerprint(path)

    def changed(self, paths: Iterable[str]) -> list[Path]:
        """The watched files among ``paths`` whose content differs from the last one seen."""
        changed = []
        for raw in paths:
            path = Path(raw).absolute()
            if path in self.files and fingerprint(path) != self.seen.get(path):
                changed.append(path)
        return sorted(set(changed))

    def on_change(self, paths: Iterable[str]) -> bool:
        """Handle one batch of file events; True when the gateway was told to reload."""
        changed = self.changed(paths)
        if not changed:
            return False
        self._remember(changed)
        names = ", ".join(self.label if path == self.manifest else _display(path) for path in changed)
        result = self._check()
        refused = self._refused(result)
        if refused:
            if self.generated_by is not None:  # `fngw serve`: its manifest is no file of the user's
                report = render_generated(refused, str(self.manifest), self.generated_by, self.label)
            else:
                problems = [replace(p, file=self.label) if p.file == str(self.manifest) else p for p in refused]
                report = render([(self.label, problems)], "text")
            if report != self.reported:
                self.reported = report
                print(
                    f"fngw: {names} changed, but is not valid; still serving the last valid version:",
                    file=self.out,
                )
                print(report, file=self.out, flush=True)
            return False
        assert result.deployment is not None
        self.reported = None
        self.known_syntax = _syntax_errors(result)
        sources = result.deployment.sources()
        self._remember(sources - self.files)
        self.files = sources | {self.manifest}
        if self.busy():
            if not self.pending:
                print(f"fngw: {names} changed; reloading once the reload under way ends", file=self.out, flush=True)
            self.pending = True
            return False
        print(f"fngw: {names} changed; reloading", file=self.out, flush=True)
        self.reload()
        self._stop_unless_watched(result)
        return True

    def _stop_unless_watched(self, result: CheckResult) -> None:
        """The version just reloaded says ``server.watch: false``: that reload was the last."""
        if result.deployment is not None and not result.deployment.manifest.server.watch:
            self.stopped = True
            message = "fngw: server.watch is now false: no longer watching (a restart turns it on again)"
            print(message, file=self.out, flush=True)

    def retry(self) -> bool:
        """A change that came during a reload: reload now if that one has ended and the files are
        still valid (checked again: they may have changed since). True when it reloaded."""
        if not self.pending or self.busy():
            return False
        self.pending = False
        result = self._check()
        if self._refused(result) or result.deployment is None:
            return False  # reported by on_change when the breaking change came
        self.known_syntax = _syntax_errors(result)
        self.files = result.deployment.sources() | {self.manifest}
        self._remember(self.files)
        self.reload()
        self._stop_unless_watched(result)
        return True

    def _refused(self, result: CheckResult) -> list[Problem]:
        """Why not to reload onto ``result``: its problems when it is not valid; else the cells that
        no longer compile (warnings elsewhere, as Kernel Gateway serves them, but a fresh typo must
        not replace a working version), as errors."""
        if result.deployment is None:
            return result.problems
        fresh = [p for p in result.problems if p.rule == SYNTAX_RULE and _syntax_key(p) not in self.known_syntax]
        return [replace(p, severity="error") for p in fresh]


def _syntax_key(problem: Problem) -> tuple[str, str]:
    return problem.file, problem.message  # not the line: an edit above the cell moves it


def _syntax_errors(result: CheckResult) -> set[tuple[str, str]]:
    return {_syntax_key(p) for p in result.problems if p.rule == SYNTAX_RULE}


def _display(path: Path) -> str:
    """``path`` relative to the working folder when it is under it, else absolute."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def signal_master(master_pid: int, mark: Path) -> Callable[[], None]:
    """The reload of a gunicorn master: leave the mark, then SIGHUP."""

    def reload() -> None:
        mark.touch()
        os.kill(master_pid, signal.SIGHUP)

    return reload


def run(watcher: SourceWatcher, master_pid: int, stop: threading.Event) -> None:
    """Watch until ``stop`` is set or the master is gone (its PID no longer our parent)."""
    import watchfiles  # only in this process

    while not stop.is_set() and os.getppid() == master_pid:
        folders = watcher.folders()
        for changes in watchfiles.watch(
            *folders,
            recursive=False,
            step=STEP_MS,
            rust_timeout=PARENT_CHECK_MS,  # also how soon a change that waited for a reload goes
            yield_on_timeout=True,
            stop_event=stop,
            raise_interrupt=False,
        ):
            if os.getppid() != master_pid:
                return
            try:
                reloaded = _handle(watcher, [path for _, path in changes])
            except Exception:  # a fault of ours must not end the watching: the next save still counts
                print("fngw: the watcher failed to handle a change; still watching:", file=sys.stderr)
                traceback.print_exc()
                sys.stderr.flush()
                continue
            if watcher.stopped:
                return
            if reloaded and watcher.folders() != folders:
                break  # the deployment reads files in another folder now: watch those too


def _handle(watcher: SourceWatcher, paths: list[str]) -> bool:
    """One batch of file events (none: a timeout, when a change that waited may go now)."""
    if paths and watcher.on_folder_change(paths):
        paths.append(str(watcher.manifest))  # written again just now: it changed too
    return watcher.on_change(paths) if paths else watcher.retry()


def main(argv: list[str] | None = None) -> int:
    """``python -m fngw.server.watch --master PID [--regenerate] MANIFEST``, as the gunicorn hooks
    start it; its marks are the master's instance folder's (``InstancePaths``)."""
    parser = argparse.ArgumentParser(prog="fngw-watch")
    parser.add_argument("--master", type=int, required=True)
    parser.add_argument("--regenerate", action="store_true", help="fngw serve FOLDER: the manifest follows it")
    parser.add_argument("manifest", type=Path)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    instance = InstancePaths(args.master)
    watcher = SourceWatcher(
        args.manifest,
        signal_master(args.master, instance.validated),
        sys.stderr,
        busy=lambda: instance.validated.exists() or instance.reloading.exists(),
    )
    if instance.root in args.manifest.absolute().parents:  # written by `fngw serve`
        watcher.label = "(fngw serve's manifest)"
        watcher.generated_by = "fngw serve"
    if args.regenerate:
        from fngw.starter import regenerate_serve_manifest, served_folders

        spec, manifest = instance.serve_spec, args.manifest
        told: set[str] = set()

        def said(line: str) -> None:
            if line not in told:  # a folder rescanned on every change: each thing is said once
                told.add(line)
                print(f"fngw serve: {line}", file=sys.stderr, flush=True)

        def regenerate() -> bool:
            changed = regenerate_serve_manifest(spec, manifest, said)
            watcher.served = served_folders(spec)
            return changed

        watcher.regenerate = regenerate
        watcher.served = served_folders(spec)
    print(f"fngw: watching {len(watcher.files)} file(s) for changes", file=sys.stderr, flush=True)
    run(watcher, args.master, stop)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
