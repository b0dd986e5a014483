"""Asynchronous-call semantics in the fast tier (Falcon's TestClient, in-memory kernels, a SQLite
store in a temporary folder): the Prefer header, what is kept of a request, the manifest's jobs
settings and their checks, callback hosts, and `fngw jobs` for operators."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.testing
import gevent
import pytest
from conftest import REPO
from fakes import FakePools

from fngw.cli import main
from fngw.deployment import check_deployment
from fngw.jobs import JobOptions, SqliteJobStore, StoredRequest
from fngw.jobs.submission import prefers_async
from fngw.manifest import CallbackSettings, TokenSource, load_manifest
from fngw.server.app import create_app

OPS = "ops-secret"


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("FNGWTEST_OPS_TOKEN", OPS)
    monkeypatch.setenv("FNGWTEST_PARTNER_TOKEN", "partner-secret")
    deployment = check_deployment(REPO / "tests" / "notebooks" / "fngw.yaml", offline=True).deployment
    assert deployment is not None
    store = SqliteJobStore(tmp_path / "jobs.db")
    app = create_app(deployment.manifest, deployment.plan, FakePools(deployment.plan), job_store=store)
    app.runner.start()
    yield falcon.testing.TestClient(app)
    app.runner.close()


def finished(client, href: str, **kw) -> dict:
    for _ in range(100):
        job = client.simulate_get(href, **kw).json
        if job["status"] not in ("queued", "running"):
            return job
        gevent.sleep(0.02)
    raise AssertionError(job)


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("respond-async", True),
        ("RESPOND-ASYNC", True),
        ("wait=10, respond-async", True),
        ("respond-async; foo=bar", True),
        ('return=minimal, respond-async="x"', True),
        ("return=representation", False),
        ("respond-asynchronously", False),
        ("", False),
    ],
)
def test_the_prefer_header_is_read_as_rfc_7240_writes_it(header, wanted):
    req = falcon.testing.create_req(headers={"Prefer": header} if header else {})
    assert prefers_async(req) is wanted


def test_a_job_replays_the_call_and_keeps_no_credential(client, tmp_path):
    sync = client.simulate_get("/secured/hello", headers={"Authorization": f"Bearer {OPS}"})
    accepted = client.simulate_get(
        "/secured/hello", query_string=f"%74oken={OPS}&x=%2F1", headers={"Prefer": "respond-async"}
    )
    assert accepted.status_code == 202 and accepted.headers["location"] == accepted.json["href"]
    job = finished(client, accepted.json["href"], params={"token": OPS})
    result = client.simulate_get(job["result"], params={"token": OPS})
    assert (result.status_code, result.text, result.headers["content-type"]) == (
        sync.status_code,
        sync.text,
        sync.headers["content-type"],
    )
    stored = SqliteJobStore(tmp_path / "jobs.db").get(job["id"])
    assert stored.owner == "ops" and stored.request.target == "/secured/hello?x=%2F1"
    assert not {name.lower() for name, _ in stored.request.headers} & {"authorization", "prefer"}


def test_job_resources_answer_head_list_several_statuses_and_keep_no_cookie(client, tmp_path):
    auth = {"Authorization": f"Bearer {OPS}"}
    first = client.simulate_get("/secured/hello", headers={**auth, "Prefer": "respond-async", "Cookie": "s=1"})
    done = finished(client, first.json["href"], headers=auth)
    assert client.simulate_head(done["href"], headers=auth).status_code == 200
    assert client.simulate_head(done["result"], headers=auth).status_code == 200
    listed = client.simulate_get("/_fngw/jobs", query_string="status=queued&status=succeeded", headers=auth).json
    assert [job["id"] for job in listed["jobs"]] == [done["id"]]
    assert client.simulate_get("/_fngw/jobs", query_string="status=queued,bogus", headers=auth).status_code == 400
    stored = SqliteJobStore(tmp_path / "jobs.db").get(done["id"])
    assert "cookie" not in {name.lower() for name, _ in stored.request.headers}


def test_head_and_invalid_requests_are_never_jobs(client):
    assert client.simulate_head("/hello", headers={"Prefer": "respond-async"}).status_code == 200
    assert client.simulate_post("/people", body="{", headers={"Prefer": "respond-async",
                                "Content-Type": "application/json"}).status_code == 400  # fmt: skip
    bad_key = client.simulate_get("/hello", headers={"Prefer": "respond-async", "Idempotency-Key": "has space"})
    assert bad_key.status_code == 422 and "Idempotency-Key" in bad_key.json["message"]
    no_callbacks = client.simulate_get("/hello", headers={"Prefer": "respond-async", "X-Callback-Url": "http://a/"})
    assert no_callbacks.status_code == 422 and "jobs.callbacks" in no_callbacks.json["message"]
    assert client.simulate_get("/_fngw/jobs/nope").status_code == 404


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "nb.ipynb").write_text((REPO / "tests" / "jobs" / "work.ipynb").read_text())
    path = tmp_path / "fngw.yaml"
    path.write_text(text)
    return path


def test_store_urls_name_files_as_file_urls_do(tmp_path):
    base = "version: 1\nnotebooks: {work: {path: nb.ipynb}}\njobs: {store: %s}\n"
    absolute = load_manifest(write(tmp_path, base % "sqlite:///var/fngw/jobs.db")).manifest
    assert absolute.jobs.store.path == Path("/var/fngw/jobs.db")
    relative = load_manifest(write(tmp_path, base % "sqlite:state/jobs.db")).manifest
    assert relative.jobs.store.path == (tmp_path / "state" / "jobs.db").resolve()
    redis = load_manifest(write(tmp_path, base % "redis://:pw@cache:6379/2")).manifest
    assert redis.jobs.store.url == "redis://:pw@cache:6379/2" and redis.jobs.store.describe() == "redis://cache:6379/2"
    remote = load_manifest(write(tmp_path, base % "sqlite://host/jobs.db"))
    assert [(p.path, p.rule) for p in remote.problems] == [("$.jobs.store", "pattern")]  # a file is local
    default = load_manifest(write(tmp_path, "version: 1\nnotebooks: {work: {path: nb.ipynb}}\n")).manifest
    assert default.jobs is not None and default.jobs.store is None and default.jobs.timeout == 3600


def test_jobs_settings_that_cannot_work_are_refused_with_their_place(tmp_path):
    text = 'version: 1\nnotebooks: {work: {path: nb.ipynb}}\njobs: {store: "%s", visibility: 0, ttl: 0s}\n'
    problems = load_manifest(write(tmp_path, text % "redis://:secret@cache:notaport/0")).problems
    assert [(p.path, p.rule) for p in problems] == [
        ("$.jobs.store", "job-store-url"),
        ("$.jobs.visibility", "job-duration-too-short"),
        ("$.jobs.ttl", "job-duration-too-short"),
    ]
    assert "secret" not in problems[0].message
    for store in ("mysql://x", "sqlite:", "sqlite://", "redis://h:6379/abc"):
        problems = load_manifest(write(tmp_path, f"version: 1\njobs: {{store: '{store}'}}\n")).problems
        assert [(p.path, p.rule) for p in problems] == [("$.jobs.store", "pattern")], store
    hosts = load_manifest(write(tmp_path, 'version: 1\njobs: {callbacks: {allow_hosts: ["*"], secret: {env: S}}}\n'))
    assert [(p.path, p.rule) for p in hosts.problems] == [("$.jobs.callbacks.allow_hosts[0]", "pattern")]


def test_async_endpoints_need_jobs_and_callbacks_need_allowed_hosts(tmp_path):
    off = load_manifest(write(tmp_path, 'version: 1\njobs: false\nnotebooks: {work: {path: nb.ipynb, '
                              'endpoints: {"GET /report": {async: true}}}}\n'))  # fmt: skip
    assert [p.rule for p in off.problems] == ["async-without-jobs"]
    stray = load_manifest(write(tmp_path, 'version: 1\nnotebooks: {work: {path: nb.ipynb, endpoints: '
                                '{"GET /report": {async: {callback: "https://evil.example/x"}}}}}\n'))  # fmt: skip
    assert [p.rule for p in stray.problems] == ["callback-host-not-allowed"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://HOOKS.example.com:8080/x", True),
        ("https://a.internal.example.com/x", True),
        ("https://internal.example.com/x", False),  # *.domain: its subdomains only
        ("http://127.0.0.1:9000/x", True),
        ("http://127.0.0.1:9001/x", False),
        ("ftp://hooks.example.com/x", False),
        ("https://hooks.example.com.evil.net/x", False),
        ("https://user@evil.net/@hooks.example.com", False),
        ("http://127.0.0.1:bad/x", False),
        ("http://user:pw@127.0.0.1:9000/x", False),  # credentials would be stored and sent
        ("http://127.0.0.1:9000/a b", False),  # no client sends a space as written
        ("http://127.0.0.1:9000/a\nb", False),
    ],
)
def test_callback_hosts(url, allowed):
    settings = CallbackSettings(
        ("hooks.example.com", "*.internal.example.com", "127.0.0.1:9000"), TokenSource("s", env="S")
    )
    assert settings.allows(url) is allowed


def test_fngw_jobs_lists_shows_and_cancels(tmp_path, capsys):
    store = SqliteJobStore(tmp_path / "jobs.db")
    request = StoredRequest("GET", "/report", (), b"")
    queued, _ = store.submit("GET /report", request, JobOptions(timeout=60.0), owner="ops")
    where = f"sqlite://{tmp_path / 'jobs.db'}"
    assert main(["jobs", "list", "--store", where]) == 0
    assert queued.id in capsys.readouterr().out
    assert main(["jobs", "show", queued.id, "--store", where]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["owner"] == "ops" and shown["request"]["target"] == "/report"
    assert main(["jobs", "cancel", queued.id, "--store", where]) == 0
    assert main(["jobs", "cancel", queued.id, "--store", where]) == 1
    assert "finished: cancelled" in capsys.readouterr().err
    assert main(["jobs", "list", "--status", "cancelled", "--json", "--store", where]) == 0
    assert [job["id"] for job in json.loads(capsys.readouterr().out)] == [queued.id]
    assert main(["jobs", "show", "nope", "--store", where]) == 1
    assert main(["jobs", "show", "--store", where]) == 2
    assert main(["jobs", "list", "--store", "sqlite://"]) == 2
    assert main(["jobs", "list", "--store", f"sqlite:{tmp_path / 'none.db'}"]) == 2
    assert "no such job store" in capsys.readouterr().err


def test_a_result_fetched_cross_origin_carries_its_own_cors_answer_once(client):
    origin = {"Origin": "https://app.example.com"}
    accepted = client.simulate_get("/hello", headers={"Prefer": "respond-async", **origin})
    job = finished(client, accepted.json["href"], headers=origin)
    result = client.simulate_get(job["result"], headers=origin)
    assert result.text == "hello world\n"
    allow = [value for name, value in result.headers.items() if name.lower() == "access-control-allow-origin"]
    assert allow == ["https://app.example.com"]
    assert len(result.headers.get("access-control-allow-origin", "").split(",")) == 1


def test_the_openapi_document_describes_asynchronous_calls_and_the_job_resources(client):
    from openapi_spec_validator import validate

    document = client.simulate_get("/_fngw/openapi.json").json
    validate(document)
    hello = document["paths"]["/hello"]["get"]
    assert hello["responses"]["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Job"}
    assert hello["x-fngw-async"] == {"always": False, "prefer": "respond-async"}
    assert {"/_fngw/jobs", "/_fngw/jobs/{job_id}", "/_fngw/jobs/{job_id}/result"} <= set(document["paths"])
    assert set(document["paths"]["/_fngw/jobs/{job_id}"]) == {"get", "delete"}


def test_a_job_whose_kernel_a_synchronous_call_took_first_goes_back_to_the_queue(client, tmp_path, monkeypatch):
    from fngw.kernels import NoIdleKernel

    target = client.app.pools["api"]  # the pool of /hello
    original = target.acquire
    refused = []

    def busy_once(queue_timeout=None, wait=True):
        if not wait and not refused:
            refused.append(True)
            raise NoIdleKernel("pool: no idle kernel", target.name)
        return original(queue_timeout, wait)

    monkeypatch.setattr(target, "acquire", busy_once)
    accepted = client.simulate_get("/hello", headers={"Prefer": "respond-async"})
    job = finished(client, accepted.json["href"])
    assert refused and job["status"] == "succeeded"
    assert SqliteJobStore(tmp_path / "jobs.db").get(job["id"]).attempts == 1  # the refused try did not count
