"""``/_fngw/docs``: an interactive page over the gateway's OpenAPI document (Swagger UI).

Swagger UI's files ship inside the ``swagger-ui-py`` package (its ``static`` folder: Swagger UI 5,
which reads OpenAPI 3.1), so the page works with no internet. The page is under ``auth.default``
like the document; its script and style files are Swagger UI's own and public. Opened as
``/_fngw/docs?token=...``, the page sends that token with every request it makes (the document
included) and pre-fills Swagger UI's "Authorize" dialog; without one, the dialog asks for it.
"""

from __future__ import annotations

import html
import importlib.resources
import json
from pathlib import Path

import falcon

from fngw.auth import Guarded
from fngw.manifest import Access

from .files import StaticResource

# The files of Swagger UI the page loads; nothing else of the folder is served.
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")


def swagger_ui_folder() -> Path:
    """Where the installed ``swagger-ui-py`` keeps Swagger UI's files."""
    return Path(str(importlib.resources.files("swagger_ui") / "static"))


class DocsPage(Guarded):
    """``GET {base}/_fngw/docs``: the HTML page; ``spec_url`` and ``assets_url`` are absolute paths."""

    def __init__(self, spec_url: str, assets_url: str, access: Access):
        self.access = access
        self.page = _PAGE.format(
            assets=html.escape(assets_url), spec=json.dumps(spec_url).replace("<", "\\u003c")
        ).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The page (HTML)."""
        resp.content_type = "text/html; charset=utf-8"
        resp.cache_control = ["no-cache"]
        resp.data = self.page


class DocsAssets(StaticResource):
    """``GET {base}/_fngw/docs/assets/{file}``: Swagger UI's script, style and icon (public)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, filepath: str = "") -> None:
        """One of ``ASSETS``; 404 for anything else."""
        if filepath not in ASSETS:
            raise falcon.HTTPNotFound(description=f"no such asset {filepath!r}")
        super().on_get(req, resp, filepath)
        resp.cache_control = ["public", "max-age=86400"]

    on_head = on_get


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fngw API</title>
<link rel="icon" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
const token = new URLSearchParams(window.location.search).get("token");
const ui = SwaggerUIBundle({{
  url: {spec},
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  requestInterceptor: (request) => {{
    if (token && !request.headers.Authorization) request.headers.Authorization = "Bearer " + token;
    return request;
  }},
  onComplete: () => {{ if (token) ui.preauthorizeApiKey("bearer", token); }},
}});
</script>
</body>
</html>
"""
