"""A table of broken manifests and notebooks: each reports the exact place, JSON path and rule.

Every case is checked exactly as `fngw validate` checks it (strict YAML, schema, meaning, machine),
and the errors it reports must be exactly the expected ones: nothing missing, nothing extra.
"""

from __future__ import annotations

import pytest
from conftest import write_notebook

from fngw.deployment import check_deployment

NB = "notebooks:\n  nb:\n    path: nb.ipynb\n"

CASES = [
    # --- YAML ------------------------------------------------------------------------------------
    ("empty file", "# nothing here\n", [(1, 1, "$", "yaml-empty")]),
    ("syntax error", "version: 1\nnotebooks:\n  nb: [\n", [(4, 1, "$", "yaml-syntax")]),
    ("tab indentation", "version: 1\nserver:\n\tbase_url: /\n", [(3, 1, "$", "yaml-syntax")]),
    ("duplicate key", "version: 1\nversion: 1\n", [(2, 1, "$.version", "yaml-duplicate-key")]),
    ("second document", "version: 1\n---\nversion: 1\n", [(2, 1, "$", "yaml-multiple-documents")]),
    (
        "merge key",
        "version: 1\ndefaults: &d {timeout: 5s}\nserver:\n  <<: *d\n",
        [(4, 3, "$.server", "yaml-merge-key")],
    ),
    (
        "yaml 1.1 boolean",
        "version: 1\n" + NB + "    download: yes\n",
        [(5, 15, "$.notebooks.nb.download", "yaml-ambiguous-bool")],
    ),
    ("unsupported tag", "version: !!binary MQ==\n", [(1, 10, "$.version", "yaml-tag")]),
    # --- schema ----------------------------------------------------------------------------------
    ("top level is a list", "- version: 1\n", [(1, 1, "$", "type")]),
    ("missing version", "notebooks: {}\n", [(1, 1, "$", "required")]),
    ("version 2", "version: 2\n", [(1, 10, "$.version", "const")]),
    ("unknown top-level key", "version: 1\nnotebook: {}\n", [(2, 1, "$.notebook", "additionalProperties")]),
    ("boolean as string", "version: 1\n" + NB + "    download: 'true'\n", [(5, 15, "$.notebooks.nb.download", "type")]),
    ("bad duration", "version: 1\ndefaults:\n  timeout: 30x\n", [(3, 12, "$.defaults.timeout", "pattern")]),
    ("negative duration", "version: 1\ndefaults:\n  timeout: -1\n", [(3, 12, "$.defaults.timeout", "minimum")]),
    ("bad size", "version: 1\nserver:\n  max_body: 10XB\n", [(3, 13, "$.server.max_body", "pattern")]),
    ("pool of zero", "version: 1\ndefaults:\n  pool: {size: 0}\n", [(3, 16, "$.defaults.pool.size", "minimum")]),
    (
        "misspelt pool key",
        "version: 1\ndefaults:\n  pool:\n    sise: 2\n",
        [(4, 5, "$.defaults.pool.sise", "additionalProperties")],
    ),
    (
        "upper-case notebook name",
        "version: 1\nnotebooks:\n  Scotch: {path: nb.ipynb}\n",
        [(3, 3, "$.notebooks.Scotch", "pattern")],
    ),
    ("notebook without path", "version: 1\nnotebooks:\n  nb: {mount: /x}\n", [(3, 3, "$.notebooks.nb", "required")]),
    (
        "env value not a string",
        "version: 1\n" + NB + "    env: {WORKERS: 4}\n",
        [(5, 20, "$.notebooks.nb.env.WORKERS", "type")],
    ),
    (
        "env name invalid",
        "version: 1\n" + NB + "    env: {1BAD: x}\n",
        [(5, 11, '$.notebooks.nb.env["1BAD"]', "pattern")],
    ),
    (
        "endpoint key not an annotation",
        "version: 1\n" + NB + "    endpoints:\n      FETCH /x: {}\n",
        [(6, 7, '$.notebooks.nb.endpoints["FETCH /x"]', "pattern")],
    ),
    (
        "access neither public nor list",
        "version: 1\n" + NB + "    auth: private\n",
        [(5, 11, "$.notebooks.nb.auth", "anyOf")],
    ),
    (
        "token source with env and file",
        "version: 1\nauth:\n  tokens:\n    ops: {env: A, file: a}\n",
        [(4, 10, "$.auth.tokens.ops", "maxProperties")],
    ),
    (
        "token env name invalid",
        "version: 1\nauth:\n  tokens:\n    ops: {env: 1A}\n",
        [(4, 16, "$.auth.tokens.ops.env", "pattern")],
    ),
    ("base_url without slash", "version: 1\nserver:\n  base_url: api\n", [(3, 13, "$.server.base_url", "pattern")]),
    (
        "mount with a parameter",
        "version: 1\n" + NB + "    mount: /x/:id\n",
        [(5, 12, "$.notebooks.nb.mount", "pattern")],
    ),
    (
        "cors origin without scheme",
        "version: 1\nserver:\n  cors:\n    allow_origin: [example.com]\n",
        [(4, 19, "$.server.cors.allow_origin", "anyOf")],
    ),
    (
        "cors unknown method",
        "version: 1\nserver:\n  cors:\n    allow_methods: [GET, FETCH]\n",
        [(4, 26, "$.server.cors.allow_methods[1]", "enum")],
    ),
    (
        "kernel_api unknown key",
        "version: 1\nkernel_api:\n  max_kernel: 3\n",
        [(3, 3, "$.kernel_api.max_kernel", "additionalProperties")],
    ),
    (
        "allowed kernels repeated",
        "version: 1\nkernel_api:\n  allowed_kernels: [python3, python3]\n",
        [(3, 20, "$.kernel_api.allowed_kernels", "uniqueItems")],
    ),
    # --- meaning ---------------------------------------------------------------------------------
    (
        "unknown token in default",
        "version: 1\nauth:\n  tokens: {ops: {env: OPS}}\n  default: [ops, opz]\n",
        [(4, 18, "$.auth.default[1]", "auth-unknown-token")],
    ),
    (
        "credentials with any origin",
        "version: 1\nserver:\n  cors:\n    allow_origin: '*'\n    allow_credentials: true\n",
        [(5, 24, "$.server.cors.allow_credentials", "cors-credentials-wildcard")],
    ),
    (
        "prewarm above max",
        "version: 1\nkernel_api:\n  max_kernels: 2\n  prewarm: 3\n",
        [(4, 12, "$.kernel_api.prewarm", "prewarm-exceeds-max")],
    ),
    (
        "default kernel not allowed",
        "version: 1\nkernel_api:\n  default_kernel: python3\n  allowed_kernels: [ir]\n",
        [(3, 19, "$.kernel_api.default_kernel", "default-kernel-not-allowed")],
    ),
    (
        "notebook missing",
        "version: 1\nnotebooks:\n  nb: {path: missing.ipynb}\n",
        [(3, 14, "$.notebooks.nb.path", "notebook-unreadable")],
    ),
    (
        "notebook missing",
        "version: 1\nnotebooks:\n  nb: {path: missing.ipynb}\n",
        [(3, 14, "$.notebooks.nb.path", "notebook-unreadable")],
    ),
    (
        "override of an unannotated endpoint",
        "version: 1\n" + NB + "    endpoints:\n      GET /hullo: {timeout: 1s}\n",
        [(6, 7, '$.notebooks.nb.endpoints["GET /hullo"]', "endpoint-unknown")],
    ),
    (
        "route collision across notebooks",
        "version: 1\n" + NB + "  other:\n    path: other.ipynb\n",
        [(5, 3, "$.notebooks.other", "route-collision")],
    ),
    (
        "same shape in one notebook",
        "version: 1\nnotebooks:\n  nb: {path: shadow.ipynb}\n",
        [(3, 3, "$.notebooks.nb", "route-collision")],
    ),
    (
        "route inside the gateway's own prefix",
        "version: 1\n" + NB + "    mount: /_fngw\n",
        [(5, 12, "$.notebooks.nb.mount", "route-reserved")] * 2,
    ),
    (
        "route inside the kernel API",
        "version: 1\nkernel_api: {}\n" + NB + "    mount: /api\n",
        [(6, 12, "$.notebooks.nb.mount", "route-reserved")] * 2,
    ),
    (
        "no kernel anywhere",
        "version: 1\nnotebooks:\n  nb: {path: nokernel.ipynb}\n",
        [(3, 3, "$.notebooks.nb", "kernel-unknown")],
    ),
    # --- machine ---------------------------------------------------------------------------------
    (
        "kernelspec not installed",
        "version: 1\n" + NB + "    kernel: no-such-kernel\n",
        [(5, 13, "$.notebooks.nb.kernel", "kernelspec-missing")],
    ),
    (
        "default kernelspec not installed",
        "version: 1\ndefaults: {kernel: nope}\n",
        [(2, 20, "$.defaults.kernel", "kernelspec-missing")],
    ),
    (
        "static folder missing",
        "version: 1\n" + NB + "    static: public\n",
        [(5, 13, "$.notebooks.nb.static", "static-missing")],
    ),
    (
        "kernel_api seed missing",
        "version: 1\nkernel_api:\n  seed: seed.ipynb\n",
        [(3, 9, "$.kernel_api.seed", "notebook-unreadable")],
    ),
]


@pytest.fixture
def workspace(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["import json", "# GET /hello\nprint(1)", "# GET /hello/:name\nprint(2)"])
    write_notebook(tmp_path / "other.ipynb", ["# GET /hello\nprint(3)"])
    write_notebook(tmp_path / "shadow.ipynb", ["# GET /a/:id\nprint(1)", "# GET /a/:name\nprint(2)"])
    write_notebook(tmp_path / "nokernel.ipynb", ["# GET /x\nprint(1)"], kernelspec=None)
    (tmp_path / "junk.ipynb").write_text("{not json")
    return tmp_path


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_manifest_is_reported_exactly(workspace, text, expected):
    path = workspace / "fngw.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_deployment(path)
    errors = [(p.line, p.col, p.path, p.rule) for p in result.problems if p.severity == "error"]
    assert errors == expected, "\n".join(p.format_text() for p in result.problems)
    assert result.deployment is None
    for problem in result.problems:
        assert problem.file == str(path)
        assert problem.message and "Traceback" not in problem.message


def test_a_notebook_that_is_not_json_is_located_in_the_notebook(workspace):
    path = workspace / "fngw.yaml"
    path.write_text("version: 1\nnotebooks:\n  nb: {path: junk.ipynb}\n", encoding="utf-8")
    (workspace / "junk.ipynb").write_text('{"cells": [],\n  "metadata": {not json')
    result = check_deployment(path)
    [problem] = result.problems
    assert (problem.file, problem.line, problem.col) == (str(workspace / "junk.ipynb"), 2, 16)
    assert problem.rule == "notebook-unreadable" and "not JSON" in problem.message


def test_the_table_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("tracing", "expected"),
    [
        ("{exporter: zipkin}", [(4, 23, "$.server.tracing.exporter", "expected one of otlp, console, none")]),
        ("{sample_ratio: 1.5}", [(4, 27, "$.server.tracing.sample_ratio", "1.5 is greater than the maximum of 1")]),
        ('"yes"', [(4, 12, "$.server.tracing", "expected true, false or a mapping")]),
    ],
)
def test_a_bad_value_in_a_true_or_mapping_setting_is_named_at_its_key(tmp_path, tracing, expected):
    # oneOf [boolean, object]: the mapping's own error, not "not valid under any of the given schemas"
    path = tmp_path / "fngw.yaml"
    path.write_text(f"version: 1\nnotebooks: {{}}\nserver:\n  tracing: {tracing}\n", encoding="utf-8")
    found = [(p.line, p.col, p.path, p.message) for p in check_deployment(path).problems]
    assert [(line, col, where) for line, col, where, _ in found] == [e[:3] for e in expected], found
    assert all(message.startswith(e[3]) for (*_, message), e in zip(found, expected, strict=True)), found
