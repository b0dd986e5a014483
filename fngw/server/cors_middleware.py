"""The CORS middleware (the rules it applies are fngw.http.cors): CORS headers from the manifest,
on every response (errors included), and preflight answers."""

from __future__ import annotations

import falcon

from fngw.http.cors import is_preflight, origin_allowed
from fngw.manifest import CorsSettings


class Cors:
    """Falcon middleware: CORS headers from server.cors on every response (errors included), and
    answers to preflights."""

    def __init__(self, settings: CorsSettings):
        self.settings = settings
        self.any_origin = settings.allow_origin == ("*",)

    def _origin_header(self, origin: str | None) -> str | None:
        if self.any_origin and not self.settings.allow_credentials:
            return "*"
        if origin and origin_allowed(origin, self.settings.allow_origin):
            return origin
        return None

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer a preflight (204 with the allowed methods, headers, max age) before routing and auth."""
        if not is_preflight(req):
            return
        # Answer here, before routing and authentication: a preflight carries no credentials.
        resp.status = falcon.HTTP_204
        methods = self.settings.allow_methods or ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
        resp.set_header("Access-Control-Allow-Methods", ", ".join(methods))
        requested = req.get_header("Access-Control-Request-Headers")
        allowed = ", ".join(self.settings.allow_headers) if self.settings.allow_headers else requested
        if allowed:
            resp.set_header("Access-Control-Allow-Headers", allowed)
        if self.settings.max_age is not None:
            resp.set_header("Access-Control-Max-Age", str(int(self.settings.max_age)))
        resp.complete = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        """Add Access-Control-Allow-Origin (and the rest) when the request's origin is allowed."""
        origin = self._origin_header(req.get_header("Origin"))
        if origin is None:
            return
        resp.set_header("Access-Control-Allow-Origin", origin)
        if origin != "*":
            resp.append_header("Vary", "Origin")
        if self.settings.allow_credentials:
            resp.set_header("Access-Control-Allow-Credentials", "true")
        if self.settings.expose_headers and not is_preflight(req):
            resp.set_header("Access-Control-Expose-Headers", ", ".join(self.settings.expose_headers))
