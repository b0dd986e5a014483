"""Manifests written for the user: `fngw init` (a commented starter for the notebooks of a folder)
and `fngw serve` (one notebook, no manifest to write). Text only: nothing here starts a process."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fngw.notebook import NotebookError, parse_notebook

_NAME_START = re.compile(r"^[^a-z]+")
_NAME_REST = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class FoundNotebook:
    name: str
    path: Path  # relative to the folder the manifest goes in
    endpoints: tuple[str, ...]  # "GET /path"
    problem: str | None = None


def notebook_name(stem: str) -> str:
    """A manifest name for a notebook file: lower case, a letter first, then letters, digits, - or _."""
    name = _NAME_REST.sub("-", stem.lower()).strip("-_")
    name = _NAME_START.sub("", name)
    return name or "notebook"


def find_notebooks(folder: Path) -> list[FoundNotebook]:
    """The notebooks under ``folder`` (checkpoints and hidden folders left out), with their endpoints."""
    found: list[FoundNotebook] = []
    paths = [path for path in sorted(folder.rglob("*.ipynb")) if not _hidden(path.relative_to(folder))]
    for name, path in unique_names(paths).items():
        relative = path.relative_to(folder)
        try:
            parsed = parse_notebook(path)
        except NotebookError as exc:
            found.append(FoundNotebook(name, relative, (), str(exc)))
            continue
        endpoints = tuple(f"{e.method} {e.path}" for e in parsed.endpoints)
        found.append(FoundNotebook(name, relative, endpoints))
    return found


def _hidden(relative: Path) -> bool:
    """Under a hidden folder or hidden itself (``.ipynb_checkpoints``, ``.venv``)."""
    return any(part.startswith(".") for part in relative.parts)


def starter_manifest(notebooks: list[FoundNotebook]) -> str:
    """A commented manifest serving ``notebooks``: what `fngw init` writes."""
    served = [nb for nb in notebooks if nb.endpoints]
    mount_each = len(served) > 1  # several notebooks may declare the same paths
    lines = [
        "# fngw manifest, written by `fngw init`. Check it with `fngw validate fngw.yaml`;",
        "# serve it with `gunicorn fngw.wsgi` from this folder. Reference: docs/manifest.md.",
        "version: 1",
        "",
        "server:",
        "  base_url: /",
        "  max_body: 10MB              # larger request bodies get 413",
        "  log_format: auto            # text on a terminal, JSON otherwise (or force text or json)",
        "",
        "auth:",
        "  default: public             # the gateway's own routes; see the tokens below",
        "  # tokens:",
        "  #   ops: {env: FNGW_OPS_TOKEN}   # a secret read from the environment, never from this file",
        "",
        "defaults:",
        "  timeout: 30s                # a request running longer gets 504 and its kernel is interrupted",
        "  pool:",
        "    size: 1                   # warm kernels per notebook: requests run one at a time on each",
        "    max_queue: 10             # requests waiting for a kernel; one more gets 503",
        "    queue_timeout: 10s        # longest wait for a kernel before 503",
        "",
        "notebooks:",
    ]
    if not served:
        lines.append("  {}                          # no notebook here has an annotated cell such as `# GET /hello`")
    for nb in served:
        lines.append(f"  {nb.name}:")
        lines.append(f"    path: {_yaml_string(nb.path.as_posix())}")
        if mount_each:
            lines.append(f"    mount: /{nb.name}  # its endpoints are served under this prefix")
        lines.append("    # pool: {size: 2}           # overrides defaults.pool for this notebook")
        lines.append("    # env: {MODEL: small}       # environment of its kernels")
        lines.append("    # endpoints:                # per endpoint: timeout, pool, auth")
        lines.append("    #   " + _yaml_string(nb.endpoints[0]) + ": {timeout: 5s}")
        lines.append("    # serves: " + ", ".join(nb.endpoints))
    skipped = [nb for nb in notebooks if not nb.endpoints]
    if skipped:
        lines.append("")
        lines.append("# Not served (no annotated cell, or not readable):")
        for nb in skipped:
            lines.append(f"#   {nb.path.as_posix()}" + (f": {nb.problem}" if nb.problem else ""))
    return "\n".join(lines) + "\n"


def serve_manifest(
    notebooks: list[Path],
    *,
    pool: int,
    timeout: str,
    max_queue: int,
    kernel_api: bool,
    log_format: str,
    watch: bool = False,
    names: Mapping[str, Path] | None = None,
) -> str:
    """The manifest `fngw serve` runs: one notebook at the root, or several, each mounted at its
    name (``/scotches`` for ``scotches.ipynb``), since notebooks may declare the same paths."""
    server = f"log_format: {log_format}" + (", watch: true" if watch else "")
    lines = [
        "version: 1",
        f"server: {{{server}}}",
        f"defaults: {{timeout: {timeout}, pool: {{size: {pool}, max_queue: {max_queue}}}}}",
        "notebooks:",
    ]
    for name, path in (names if names is not None else unique_names(notebooks)).items():
        mount = f", mount: /{name}" if len(notebooks) > 1 else ""
        lines.append(f"  {name}: {{path: {_yaml_string(str(path))}{mount}}}")
    if kernel_api:
        lines.append("kernel_api: {}")
    return "\n".join(lines) + "\n"


def served_notebooks(arguments: list[str], warn: Callable[[str], None], keep: Iterable[Path] = ()) -> list[Path] | str:
    """The absolute notebook files ``fngw serve`` serves for ``arguments`` (a folder: its notebooks
    that have annotated cells; ``warn`` is told of those it cannot read, except those in ``keep``,
    served before, which stay: their breakage is then the watcher's to report), or what is wrong."""
    kept = set(keep)
    notebooks: list[Path] = []
    for argument in arguments:
        path = Path(argument).resolve()
        if path.is_dir():
            found_here = find_notebooks(path)
            for nb in found_here:
                if nb.problem and path / nb.path not in kept:  # said: the user may expect it served
                    warn(f"skipping {Path(argument) / nb.path}: {nb.problem}")
            found = [path / nb.path for nb in found_here if nb.endpoints or (nb.problem and path / nb.path in kept)]
            if not found:
                return f"{argument}: no notebook in this folder has an annotated cell (such as `# GET /hello`)"
            notebooks.extend(found)
        elif path.is_file():
            notebooks.append(path)
        else:
            return f"{argument}: no such notebook or folder"
    return list(dict.fromkeys(notebooks))  # a notebook named twice is served once


def served_folders(spec: Path) -> set[Path]:
    """The folders (and their subfolders, hidden ones left out) a `fngw serve` spec serves whole."""
    arguments = json.loads(spec.read_text(encoding="utf-8"))["arguments"]
    folders: set[Path] = set()
    for argument in arguments:
        root = Path(argument)
        if root.is_dir():
            folders.add(root)
            folders.update(d for d in root.rglob("*") if d.is_dir() and not _hidden(d.relative_to(root)))
    return folders


def regenerate_serve_manifest(spec: Path, manifest: Path, warn: Callable[[str], None]) -> bool:
    """Write ``manifest`` again from ``spec`` (the served folders' notebooks now: one renamed,
    added or removed); whether it changed. A folder left with nothing to serve keeps the last one."""
    described = json.loads(spec.read_text(encoding="utf-8"))
    before = {Path(path): name for path, name in described.get("names", {}).items()}
    notebooks = served_notebooks(described["arguments"], warn, keep=before)
    if isinstance(notebooks, str):
        warn(notebooks)
        return False
    names = unique_names(notebooks, keep=before)  # a notebook keeps its URL while others come and go
    text = serve_manifest(notebooks, names=names, **described["options"])
    if manifest.read_text(encoding="utf-8") == text:
        return False
    manifest.write_text(text, encoding="utf-8")
    spec.write_text(json.dumps({**described, "names": {str(p): n for n, p in names.items()}}), encoding="utf-8")
    for name, path in sorted(names.items()):
        if before.get(path) != name:
            warn(f"adding /{name} for {path} (served once the folder's notebooks are all valid)")
    for path, name in sorted(before.items(), key=lambda item: item[1]):
        if name not in names:
            warn(f"removing /{name} ({path} is gone or renamed)")
    return True


def unique_names(paths: list[Path], keep: Mapping[Path, str] | None = None) -> dict[str, Path]:
    """A manifest name for each notebook (``notebook_name``), ``-2``, ``-3`` ... added to repeats.
    A notebook whose file is named exactly so gets the name before one whose name had to be made
    (``fast.ipynb`` is ``fast`` beside ``2fast.ipynb``); then in ``paths`` order. In ``paths`` order."""

    def made(path: Path) -> int:
        name = notebook_name(path.stem)
        return 0 if path.stem == name else 1 if path.stem.casefold() == name else 2

    named: dict[Path, str] = {}
    taken: set[str] = set()
    for path in paths:  # ``keep``: names given before, kept while their notebook is there
        name = (keep or {}).get(path)
        if name is not None and name not in taken:
            named[path] = name
            taken.add(name)
    for path in sorted((p for p in paths if p not in named), key=made):  # stable: paths order within each rank
        name = base = notebook_name(path.stem)
        n = 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        named[path] = name
    return {named[path]: path for path in paths}


def _yaml_string(text: str) -> str:
    """``text`` as a double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(text)
