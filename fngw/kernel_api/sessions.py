"""Sessions as Jupyter Server's sessions API has them: a path bound to a kernel.

Kept in memory, or, when the registry shares kernels across workers, in the shared records, so
that every worker of the instance sees the same sessions."""

from __future__ import annotations

import contextlib
import time
import uuid
from contextlib import AbstractContextManager
from typing import Any

import gevent

from .errors import Invalid, KernelApiError, LaunchTimeout, NotFound
from .models import ApiKernel, KernelModel, RemoteKernel, SessionModel, SessionRecord
from .registry import KernelRegistry

# A session still waiting for its kernel this long after its launch timeout was left by a creator
# that died (a killed worker): it is dropped, and its path can have a session again.
ABANDONED_AFTER = 30.0  # seconds
PENDING_POLL = 0.1  # seconds between looks at a session another request is creating


class SessionStore:
    """Jupyter Server's sessions (a path bound to a kernel), kept as records every worker of the instance shares."""

    def __init__(self, registry: KernelRegistry):
        self.registry = registry
        self.records = registry.shared.sessions if registry.shared is not None else None
        self._memory: dict[str, SessionRecord] = {}

    # storage: the shared records, or this process's memory
    def _all(self) -> list[SessionRecord]:
        return self.records.all() if self.records is not None else list(self._memory.values())

    def _read(self, session_id: str) -> SessionRecord | None:
        return self.records.read(session_id) if self.records is not None else self._memory.get(session_id)

    def _put(self, session: SessionRecord) -> None:
        if self.records is not None:
            self.records.write(session)
        else:
            self._memory[session["id"]] = session

    def _drop(self, session_id: str) -> None:
        if self.records is not None:
            self.records.remove(session_id)
        else:
            self._memory.pop(session_id, None)

    def _exclusive(self) -> AbstractContextManager[None]:
        return self.records.locked() if self.records is not None else contextlib.nullcontext()

    def _kernel(self, kernel_id: str | None) -> ApiKernel | RemoteKernel | None:
        if kernel_id is None:  # the session's kernel is still starting
            return None
        try:
            return self.registry.lookup(kernel_id, fresh=False)
        except NotFound:
            return None

    def _model(self, session: SessionRecord) -> SessionModel:
        entry = self._kernel(session["kernel_id"])
        kernel: KernelModel = (
            entry.model()
            if entry
            else {
                "id": session["kernel_id"] or "",
                "name": session["kernel_name"] or "",
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

    def _live(self) -> list[SessionRecord]:
        # A session whose kernel was deleted or died for good goes with it.
        live = []
        for session in self._all():
            if session["kernel_id"] is None:  # being created, by this or another worker
                continue
            if self._kernel(session["kernel_id"]) is None:
                self._drop(session["id"])
            else:
                live.append(session)
        return live

    def list(self) -> list[SessionModel]:
        """Every live session's model (sessions whose kernel is gone are dropped)."""
        return [self._model(s) for s in self._live()]

    def get(self, session_id: str) -> SessionModel:
        """The model of session_id. NotFound."""
        session = self._read(session_id)
        if session is not None and session["kernel_id"] is None:
            session = None  # still being created
        elif session is not None and self._kernel(session["kernel_id"]) is None:
            self._drop(session_id)
            session = None
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
            return self.registry.lookup(kernel["id"], fresh=False).id
        return self.registry.start_kernel(kernel.get("name"), kernel.get("env")).id

    def create(self, body: dict[str, Any]) -> SessionModel:
        """POST: the session for body's path, starting or reusing its kernel; one session per path even
        across workers. Invalid, NotFound, and the start's errors."""
        path, name, kind = self._fields(body)
        if path is None:
            raise Invalid("Missing field in JSON data: path")
        if kind is None:
            raise Invalid("Missing field in JSON data: type")
        launch_timeout = self.registry.settings.launch_timeout
        deadline = time.monotonic() + launch_timeout + ABANDONED_AFTER
        while True:
            with self._exclusive():  # one session per path, even when two instances are asked at once
                found = self._for_path(path, launch_timeout)
                if found is None:
                    session: SessionRecord = {
                        "id": str(uuid.uuid4()),
                        "path": path,
                        "name": name or "",
                        "type": kind,
                        "kernel_id": None,
                        "kernel_name": None,
                        "pending_since": time.time(),
                    }
                    self._put(session)  # pending until its kernel has started
                    break
                if found["kernel_id"] is not None:
                    return self._model(found)
            # Another request creates this path's session: its kernel is ours too, once started.
            if time.monotonic() > deadline:
                raise LaunchTimeout(f"the session for {path} is still waiting for its kernel")
            gevent.sleep(PENDING_POLL)
        try:
            kernel_id = self._kernel_for(body.get("kernel"))
        except BaseException:
            self._drop(session["id"])
            raise
        session["kernel_id"], session["kernel_name"] = kernel_id, self.registry.lookup(kernel_id, fresh=False).name
        session["pending_since"] = None
        self._put(session)
        return self._model(session)

    def _for_path(self, path: str, launch_timeout: float) -> SessionRecord | None:
        """The session of ``path``, live or still being created; forgets those whose kernel is gone
        and those whose creator left them pending (``ABANDONED_AFTER``). Call it holding the lock."""
        for session in self._all():
            if session["path"] != path:
                continue
            if session["kernel_id"] is None:
                since = session.get("pending_since") or 0.0
                if time.time() - since > launch_timeout + ABANDONED_AFTER:
                    self._drop(session["id"])
                    continue
                return session
            if self._kernel(session["kernel_id"]) is None:
                self._drop(session["id"])
                continue
            return session
        return None

    def _existing(self, session_id: str) -> SessionRecord:
        self.get(session_id)  # NotFound, and forgets a session whose kernel is gone
        session = self._read(session_id)
        if session is None:
            raise NotFound(f"Session not found: {session_id}")
        return session

    def update(self, session_id: str, body: dict[str, Any]) -> SessionModel:
        """PATCH: change a session's path, name, type or kernel (a new kernel replaces the old one,
        which is deleted unless another session uses it). ``NotFound``, ``Invalid``."""
        session = self._existing(session_id)
        path, name, kind = self._fields(body)
        if path is not None:
            session["path"] = path
        if name is not None:
            session["name"] = name
        if kind is not None:
            session["type"] = kind
        if body.get("kernel") is not None:
            old = session["kernel_id"]
            new = session["kernel_id"] = self._kernel_for(body["kernel"])
            session["kernel_name"] = self.registry.lookup(new, fresh=False).name
            if (
                old is not None
                and old != new
                and not any(s["kernel_id"] == old for s in self._all() if s["id"] != session_id)
            ):
                with contextlib.suppress(KernelApiError):
                    self.registry.delete(old)
        self._put(session)
        return self._model(session)

    def delete(self, session_id: str) -> None:
        """DELETE: the session and its kernel. ``NotFound``."""
        session = self._existing(session_id)
        self._drop(session_id)
        if session["kernel_id"] is not None:
            with contextlib.suppress(NotFound):
                self.registry.delete(session["kernel_id"])
