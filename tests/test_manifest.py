"""Loading yields immutable, typed settings with inheritance resolved: defaults -> notebook -> endpoint."""

from __future__ import annotations

import dataclasses

import pytest

from fngw.manifest import PUBLIC, Access, PoolSettings, load_manifest
from fngw.routing import plan_routes

SCOTCH = """\
version: 1
server: {base_url: /v1, max_body: 1MiB}
auth:
  tokens:
    ops: {env: FNGW_OPS_TOKEN}
    partner: {file: secrets/partner.token}
  default: [ops]
defaults:
  kernel: python3
  timeout: 60s
  pool: {size: 1, max_queue: 10, queue_timeout: 10s}
notebooks:
  scotch:
    path: scotch.ipynb
    mount: /scotch
    env: {MODEL: small}
    timeout: 30s
    pool: {size: 2}
    endpoints:
      "GET /scotches/:name":
        pool: {size: 4, max_queue: 40}
        timeout: 500ms
        auth: public
      "POST /scotches":
        auth: [partner]
"""


@pytest.fixture
def scotch(notebook, manifest):
    notebook(
        "scotch.ipynb",
        [
            "import json",
            "# GET /scotches\nprint(1)",
            "# GET /scotches/:name\nprint(2)",
            "# POST /scotches\nprint(3)",
        ],
    )
    result = load_manifest(manifest(SCOTCH))
    assert result.problems == []
    return result.manifest


def test_notebook_inherits_field_by_field_from_defaults(scotch, tmp_path):
    nb = scotch.notebooks["scotch"]
    assert nb.path == (tmp_path / "scotch.ipynb").resolve()
    assert nb.mount == "/scotch"
    assert nb.kernel == "python3"
    assert nb.timeout == 30.0
    assert nb.pool == PoolSettings(size=2, max_queue=10, queue_timeout=10.0)
    assert nb.auth == Access(public=False, tokens=("ops",))
    assert dict(nb.env) == {"MODEL": "small"}


def test_endpoint_overrides_inherit_from_their_notebook(scotch):
    nb = scotch.notebooks["scotch"]
    own = nb.endpoint("GET /scotches/:name")
    assert own.own_pool
    assert own.pool == PoolSettings(size=4, max_queue=40, queue_timeout=10.0)
    assert own.timeout == 0.5
    assert own.auth == PUBLIC
    narrowed = nb.endpoint("POST /scotches")
    assert not narrowed.own_pool and narrowed.pool == nb.pool and narrowed.timeout == 30.0
    assert narrowed.auth.tokens == ("partner",)
    plain = nb.endpoint("GET /scotches")
    assert (plain.timeout, plain.pool, plain.auth, plain.own_pool) == (30.0, nb.pool, nb.auth, False)


def test_settings_are_immutable(scotch):
    with pytest.raises(dataclasses.FrozenInstanceError):
        scotch.server.max_body = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        scotch.notebooks["other"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        scotch.notebooks["scotch"].env["MODEL"] = "large"  # type: ignore[index]


def test_units_and_paths_are_resolved(scotch, tmp_path):
    assert scotch.server.max_body == 1024 * 1024
    assert scotch.server.base_url == "/v1"
    assert scotch.auth.tokens["partner"].file == (tmp_path / "secrets" / "partner.token").resolve()
    assert scotch.auth.tokens["ops"].env == "FNGW_OPS_TOKEN"


def test_route_plan_gives_endpoints_with_their_own_pool_their_own_kernels(scotch):
    plan = plan_routes(scotch).plan
    assert [(r.method, r.path, r.pool_id) for r in plan.routes] == [
        ("GET", "/v1/scotch/scotches", "scotch"),
        ("POST", "/v1/scotch/scotches", "scotch"),
        ("GET", "/v1/scotch/scotches/:name", "scotch:GET /scotches/:name"),
    ]
    assert {pid: p.settings.size for pid, p in plan.pools.items()} == {
        "scotch": 2,
        "scotch:GET /scotches/:name": 4,
    }
    shared = plan.pools["scotch"]
    assert shared.kernel == "python3" and shared.seed_cells == ("import json",)
    assert dict(shared.env) == {"MODEL": "small"}


def test_kernel_comes_from_the_notebook_when_the_manifest_names_none(notebook, manifest):
    notebook("r.ipynb", ["# GET /x\nprint(1)"], kernelspec="ir", language="R")
    result = load_manifest(manifest("version: 1\nnotebooks:\n  r: {path: r.ipynb}\n"))
    plan = plan_routes(result.manifest).plan
    assert plan.pools["r"].kernel == "ir"
    assert plan.pools["r"].language == "r"
