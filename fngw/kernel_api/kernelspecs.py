"""The kernelspecs kernel API clients may start: names, launchable specs, and the models
``GET /api/kernelspecs`` lists (Jupyter Server's shapes).

The deployment checked every allowed kernelspec before any worker started, so all of this is read
once per worker and kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from jupyter_client.kernelspec import KernelSpecManager

from fngw.kernels import KernelSpecNotFound, ResolvedSpec, installed_kernelspecs, match_kernelspec, resolve_kernelspec

from .errors import NotFound


class KernelspecModel(TypedDict):
    """One kernelspec as ``GET /api/kernelspecs`` lists it: ``spec`` is the kernel.json content,
    ``resources`` maps ``kernel.js``/``kernel.css``/``logo-*`` stems to their URLs."""

    name: str
    spec: dict[str, Any]
    resources: dict[str, str]


class AllowedKernelspecs:
    """The installed kernelspecs ``allowed_kernels`` lets clients start (every installed one when it
    is unset), matched by name in any case."""

    def __init__(self, allowed: Sequence[str] | None):
        self._allowed_setting = allowed
        self._names: list[str] | None = None
        self._models: dict[str, KernelspecModel] | None = None

    def names(self) -> list[str]:
        """The allowed kernelspecs by their installed names, sorted."""
        if self._names is None:
            installed = installed_kernelspecs()
            if self._allowed_setting is None:
                self._names = sorted(installed)
            else:
                matched = (match_kernelspec(n, installed) for n in self._allowed_setting)
                self._names = sorted({found for found in matched if found is not None})
        return self._names

    def installed_name(self, name: str) -> str:
        """The installed name a client's ``name`` means, ignoring case. NotFound, listing the
        available names, when it is not allowed or not installed."""
        available = self.names()
        found = match_kernelspec(name, available)
        if found is None:
            raise NotFound(f"kernelspec {name!r} is not available here (available: {', '.join(available) or 'none'})")
        return found

    def resolve(self, name: str) -> ResolvedSpec:
        """The kernelspec a client's name means, ready to launch. NotFound."""
        name = self.installed_name(name)
        try:
            return resolve_kernelspec(name)
        except KernelSpecNotFound as exc:
            raise NotFound(str(exc)) from None

    def models(self, base_url: str) -> dict[str, KernelspecModel]:
        """Every allowed kernelspec's model by name; resource URLs start with ``base_url`` (the
        kernel API's prefix, for example ``/api``)."""
        if self._models is None:
            specs = KernelSpecManager().get_all_specs()
            self._models = {name: _model(name, specs[name], base_url) for name in self.names() if name in specs}
        return self._models

    def resource_file(self, name: str, filename: str) -> Path:
        """The file ``filename`` of kernelspec ``name``'s folder. NotFound when the kernelspec is
        not allowed, or the file is not in its folder (``..`` cannot leave it)."""
        name = self.installed_name(name)
        folder = Path(KernelSpecManager().get_kernel_spec(name).resource_dir).resolve()
        target = (folder / filename).resolve()
        if not target.is_relative_to(folder) or not target.is_file():
            raise NotFound(f"no file {filename!r} in kernel spec {name}")
        return target


def _model(name: str, spec: dict[str, Any], base_url: str) -> KernelspecModel:
    resources = {}
    folder = Path(spec["resource_dir"])
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.name in ("kernel.js", "kernel.css") or entry.name.startswith("logo-"):
            key = entry.stem if entry.name.startswith("logo-") else entry.name
            resources[key] = f"{base_url}/kernelspecs/{name}/{entry.name}"
    return {"name": name, "spec": spec["spec"], "resources": resources}
