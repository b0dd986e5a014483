"""Sessions as Jupyter Server's sessions API has them: a path bound to a kernel, in memory."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from .registry import Invalid, KernelApiError, KernelRegistry, NotFound


class SessionStore:
    def __init__(self, registry: KernelRegistry):
        self.registry = registry
        self.sessions: dict[str, dict[str, Any]] = {}

    def _kernel(self, kernel_id: str):
        try:
            return self.registry.get(kernel_id)
        except NotFound:
            return None

    def _model(self, session: dict[str, Any]) -> dict[str, Any]:
        entry = self._kernel(session["kernel_id"])
        kernel = (
            entry.model()
            if entry
            else {
                "id": session["kernel_id"],
                "name": session["kernel_name"],
                "execution_state": "dead",
                "connections": 0,
                "last_activity": None,
            }
        )
        return {
            "id": session["id"],
            "path": session["path"],
            "name": session["name"],
            "type": session["type"],
            "kernel": kernel,
            "notebook": {"path": session["path"], "name": session["name"]},
        }

    def _live(self) -> list[dict[str, Any]]:
        # A session whose kernel was deleted or died for good goes with it.
        for sid, session in list(self.sessions.items()):
            if self._kernel(session["kernel_id"]) is None:
                del self.sessions[sid]
        return list(self.sessions.values())

    def list(self) -> list[dict[str, Any]]:
        return [self._model(s) for s in self._live()]

    def get(self, session_id: str) -> dict[str, Any]:
        self._live()
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFound(f"Session not found: {session_id}")
        return self._model(session)

    @staticmethod
    def _fields(body: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        path = body.get("path")
        notebook = body.get("notebook")
        if path is None and isinstance(notebook, dict):  # the legacy form
            path = notebook.get("path") or notebook.get("name")
        name, kind = body.get("name"), body.get("type")
        if kind is None and isinstance(notebook, dict):
            kind = "notebook"
        for key, value in (("path", path), ("name", name), ("type", kind)):
            if value is not None and not isinstance(value, str):
                raise Invalid(f"{key} must be a string")
        return path, name, kind

    def _kernel_for(self, kernel: Any) -> str:
        if kernel is not None and not isinstance(kernel, dict):
            raise Invalid("kernel must be a JSON object with 'name' or 'id'")
        kernel = kernel or {}
        if kernel.get("id"):
            return self.registry.get(kernel["id"]).id
        return self.registry.start_kernel(kernel.get("name"), kernel.get("env")).id

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        path, name, kind = self._fields(body)
        if path is None:
            raise Invalid("Missing field in JSON data: path")
        if kind is None:
            raise Invalid("Missing field in JSON data: type")
        for session in self._live():
            if session["path"] == path:
                return self._model(session)
        kernel_id = self._kernel_for(body.get("kernel"))
        session = {
            "id": str(uuid.uuid4()),
            "path": path,
            "name": name or "",
            "type": kind,
            "kernel_id": kernel_id,
            "kernel_name": self.registry.get(kernel_id).name,
        }
        self.sessions[session["id"]] = session
        return self._model(session)

    def update(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.get(session_id)
        session = self.sessions[session_id]
        path, name, kind = self._fields(body)
        if path is not None:
            session["path"] = path
        if name is not None:
            session["name"] = name
        if kind is not None:
            session["type"] = kind
        if body.get("kernel") is not None:
            old = session["kernel_id"]
            session["kernel_id"] = self._kernel_for(body["kernel"])
            session["kernel_name"] = self.registry.get(session["kernel_id"]).name
            if old != session["kernel_id"] and not any(s["kernel_id"] == old for s in self.sessions.values()):
                with contextlib.suppress(KernelApiError):
                    self.registry.delete(old)
        return self._model(session)

    def delete(self, session_id: str) -> None:
        self.get(session_id)
        session = self.sessions.pop(session_id)
        with contextlib.suppress(NotFound):
            self.registry.delete(session["kernel_id"])
