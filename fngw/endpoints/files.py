"""A notebook's source download and its static folder."""

from __future__ import annotations

from pathlib import Path

import falcon
from falcon.routing import StaticRoute

from fngw.auth import Guarded
from fngw.manifest import Access


class SourceResource(Guarded):
    """``GET {mount}/_api/source``: the notebook file itself."""

    def __init__(self, path: Path, access: Access):
        self.path = path
        self.access = access

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The notebook file, as an attachment."""
        resp.content_type = "application/x-ipynb+json"
        resp.downloadable_as = self.path.name
        resp.data = self.path.read_bytes()


class StaticResource(Guarded):
    """``GET {mount}/public/{file}``: files below one folder, served by Falcon's ``StaticRoute``
    (streamed, with ETag, Last-Modified, 304 and byte ranges); no path ever leaves the folder, not
    even through a symbolic link. A resource of its own so that auth, CORS and the access log treat
    it as every other route."""

    def __init__(self, prefix: str, folder: Path, access: Access):
        self.folder = folder.resolve()
        self.access = access
        self._route = StaticRoute(prefix, str(self.folder))

    def on_get(self, req: falcon.Request, resp: falcon.Response, filepath: str = "") -> None:
        """One file below the folder, with its guessed Content-Type; 404 for anything else."""
        missing = falcon.HTTPNotFound(description=f"no public file {filepath!r}")
        if not filepath or "\0" in filepath:  # a NUL cannot name a file (and os.stat would raise)
            raise missing
        target = (self.folder / filepath).resolve()
        if not target.is_relative_to(self.folder) or not target.is_file():
            raise missing
        try:
            self._route(req, resp)
        except falcon.HTTPNotFound:
            raise missing from None

    on_head = on_get
