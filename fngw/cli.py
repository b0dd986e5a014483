"""The `fngw` command: `validate` manifests in CI, run their endpoint examples (`test`), print
`routes`, write a starter manifest (`init`), serve one notebook without a manifest (`serve`), and
look after asynchronous calls (`jobs`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from fngw import __version__
from fngw.deployment import CheckResult, Deployment, check_deployment
from fngw.manifest import Problem, manifest_schema, render, render_generated
from fngw.manifest.model import JOB_STATUSES as STATUSES
from fngw.manifest.reference import schema_reference_markdown

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fngw", description="A function gateway for Jupyter kernels.")
    parser.add_argument("--version", action="version", version=f"fngw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check manifests: schema, notebooks, routes, kernels, tokens")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default=None,
        help="output format (default: github under GitHub Actions, else text)",
    )
    validate.add_argument(
        "--offline", action="store_true", help="a kernelspec that is not installed here is a warning, not an error"
    )
    validate.add_argument(
        "--strict", action="store_true", help="a token secret that cannot be read is an error, not a warning"
    )
    validate.add_argument(
        "--describe",
        metavar="JSON_FILE",
        help="also write what a valid manifest deploys as JSON: the files it reads (sources) and server.watch",
    )

    routes = sub.add_parser("routes", help="print the table of routes a manifest serves")
    routes.add_argument("file", metavar="FILE")
    routes.add_argument("--offline", action="store_true", help="do not require kernelspecs to be installed")
    schema = sub.add_parser("schema", help="print the manifest's JSON Schema, or its reference as Markdown")
    schema.add_argument("--markdown", action="store_true", help="print the reference (docs/manifest.md)")

    init = sub.add_parser("init", help="write a commented starter fngw.yaml for the notebooks in a folder")
    init.add_argument("folder", nargs="?", default=".", metavar="FOLDER")
    init.add_argument("--force", action="store_true", help="replace an existing fngw.yaml")

    trial = sub.add_parser("test", help="run every endpoint example of a manifest against real kernels")
    trial.add_argument(
        "file", nargs="?", default=None, metavar="MANIFEST", help="default: $FNGW_MANIFEST, else fngw.yaml"
    )
    trial.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="ANNOTATION",
        help='only this endpoint\'s examples, as the manifest names it ("POST /orders/:region"); repeatable',
    )
    trial.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report")
    trial.add_argument(
        "--format",
        choices=("text", "github"),
        default=None,
        help="output format (default: github under GitHub Actions, else text)",
    )

    serve = sub.add_parser(
        "serve",
        help="serve notebooks' annotated cells without writing a manifest (several: each at /NAME)",
    )
    serve.add_argument(
        "notebooks",
        nargs="+",
        metavar="NOTEBOOK",
        help="notebook files, or folders whose notebooks with annotated cells are all served",
    )
    serve.add_argument(
        "--reload", action="store_true", help="reload when a notebook changes (server.watch), for development"
    )
    serve.add_argument("--pool", type=int, default=1, help="warm kernels (default 1)")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, else 8888")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--timeout", default="30s", help="per-request execution timeout (default 30s)")
    serve.add_argument("--max-queue", type=int, default=10, help="requests waiting for a kernel (default 10)")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn workers, each with its own pool")
    serve.add_argument("--kernel-api", action="store_true", help="also serve the Jupyter kernel API")
    serve.add_argument("--log-format", choices=("auto", "text", "json"), help="default: text on a terminal, else JSON")

    jobs = sub.add_parser("jobs", help="list, show or cancel the asynchronous calls in a job store")
    jobs.add_argument("action", choices=("list", "show", "cancel"))
    jobs.add_argument("job_id", nargs="?", metavar="JOB_ID", help="for show and cancel")
    jobs.add_argument("--manifest", metavar="FILE", help="default: $FNGW_MANIFEST, else fngw.yaml")
    jobs.add_argument("--store", metavar="URL", help="sqlite:///path.db or redis://host:port/db, not the manifest's")
    jobs.add_argument("--status", choices=STATUSES, help="list: only jobs of this status")
    jobs.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "schema":
            return _schema(args)
        if args.command == "init":
            return _init(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "test":
            return _test(args)
        if args.command == "jobs":
            from fngw.jobs import operator  # gevent and the stores: only for this command

            return operator.run(args, os.environ.get("FNGW_MANIFEST") or "fngw.yaml")
        return _routes(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fngw routes | head`: the reader left, which is not an error of ours
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug of ours must still not print a traceback in CI logs
        print(f"fngw: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _check(file: str, *, offline: bool, strict: bool) -> CheckResult | None:
    if file.endswith(".ipynb"):  # a common first try: say what to do instead of listing schema errors
        print(
            f"{file}: a notebook, not a manifest: `fngw init {file}` writes a manifest for it, "
            f"and `fngw serve {file}` serves it with none",
            file=sys.stderr,
        )
        return None
    try:
        return check_deployment(file, offline=offline, strict=strict)
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return None


def _validate(args: argparse.Namespace) -> int:
    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    results: list[tuple[str, list[Problem]]] = []
    unreadable = False
    for file in args.files:
        result = _check(file, offline=args.offline, strict=args.strict)
        if result is None:
            unreadable = True
            continue
        results.append((file, result.problems))
        if args.describe and result.deployment is not None:
            _describe(result.deployment, args.describe)
    if results:
        print(render(results, fmt))
    if unreadable:
        return EXIT_USAGE
    invalid = any(p.severity == "error" for _, problems in results for p in problems)
    return EXIT_INVALID if invalid else EXIT_VALID


def _describe(deployment: Deployment, target: str) -> None:
    """``{"sources": [absolute paths], "watch": bool}``: what the gunicorn master needs to know of a
    manifest without importing what reading one takes."""
    description = {
        "sources": sorted(str(path) for path in deployment.sources()),
        "watch": deployment.manifest.server.watch,
    }
    with open(target, "w", encoding="utf-8") as out:
        json.dump(description, out)


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        print(schema_reference_markdown(), end="")
    else:
        print(json.dumps(manifest_schema(), indent=2))
    return EXIT_VALID


def _routes(args: argparse.Namespace) -> int:
    result = _check(args.file, offline=args.offline, strict=False)
    if result is None:
        return EXIT_USAGE
    if result.deployment is None:
        print(render([(args.file, result.problems)], "text"), file=sys.stderr)
        return EXIT_INVALID
    plan = result.deployment.plan
    rows = [("METHOD", "PATH", "NOTEBOOK", "POOL", "AUTH", "TIMEOUT")]
    for route in plan.routes:
        pool = plan.pools[route.pool_id]
        rows.append(
            (
                route.method,
                route.path,
                route.notebook,
                f"{pool.id} (size {pool.settings.size})",
                route.settings.auth.describe(),
                f"{route.settings.timeout:g}s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_VALID


def _test(args: argparse.Namespace) -> int:
    """Exit 0 when every example passes (or none is declared), 1 when one fails or the manifest is
    invalid, 2 on bad usage (an unreadable manifest, an --endpoint that names no example)."""
    import time

    from fngw.server.trial import run_examples, selected_routes
    from fngw.server.trial_report import github_report, text_report, write_junit

    file = args.file or os.environ.get("FNGW_MANIFEST") or "fngw.yaml"
    result = _check(file, offline=False, strict=False)
    if result is None:
        return EXIT_USAGE
    if result.deployment is None:
        print(render([(file, result.problems)], "text"), file=sys.stderr)
        return EXIT_INVALID
    if args.junit_xml:  # before minutes of examples, not after them
        try:
            with open(args.junit_xml, "a"):
                pass
        except OSError as exc:
            print(f"fngw test: cannot write {args.junit_xml}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    routes = selected_routes(result.deployment, args.endpoint)
    if not routes:
        if args.endpoint:
            print(f"fngw test: no examples for {', '.join(args.endpoint)} in {file}", file=sys.stderr)
            return EXIT_USAGE
        print(f"fngw test: {file} declares no examples")
        return EXIT_VALID
    started = time.perf_counter()
    results = run_examples(result.deployment, routes)
    seconds = time.perf_counter() - started
    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    print(github_report(results, seconds) if fmt == "github" else text_report(results, seconds))
    if args.junit_xml:
        write_junit(results, seconds, Path(args.junit_xml))
    return EXIT_VALID if all(r.passed for r in results) else EXIT_INVALID


def _init(args: argparse.Namespace) -> int:
    from fngw.starter import find_notebooks, starter_manifest

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"fngw init: {folder} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    target = folder / "fngw.yaml"
    if target.exists() and not args.force:
        print(f"fngw init: {target} exists; --force replaces it", file=sys.stderr)
        return EXIT_USAGE
    notebooks = find_notebooks(folder)
    target.write_text(starter_manifest(notebooks), encoding="utf-8")
    served = [nb for nb in notebooks if nb.endpoints]
    print(f"wrote {target}: {len(served)} notebook(s) with endpoints, {len(notebooks) - len(served)} without")
    for nb in served:
        print(f"  {nb.name}: {nb.path.as_posix()} ({len(nb.endpoints)} endpoint(s))")
    result = _check(str(target), offline=True, strict=False)
    if result is None or result.deployment is None:
        print(render([(str(target), result.problems if result else [])], "text"))
        return EXIT_INVALID
    print(f"next: fngw validate {target}, then gunicorn fngw.wsgi from {folder}")
    return EXIT_VALID


def _serve(args: argparse.Namespace) -> int:
    """Check, then become the gunicorn master (exec: signals reach gunicorn itself). The generated
    manifest lives in the instance's runtime folder, which gunicorn's on_exit hook removes."""
    from fngw.master.runtime import InstancePaths
    from fngw.starter import serve_manifest, served_notebooks, unique_names

    args.log_format_given = args.log_format is not None
    args.log_format = args.log_format or "auto"
    if args.log_format_given:  # checked with the manifest as this run's own setting, not the environment's
        os.environ.pop("FNGW_LOG_FORMAT", None)
    notebooks = served_notebooks(args.notebooks, lambda line: print(f"fngw serve: {line}", file=sys.stderr))
    if isinstance(notebooks, str):
        print(f"fngw serve: {notebooks}", file=sys.stderr)
        return EXIT_USAGE
    if args.pool < 1 or args.workers < 1 or args.max_queue < 0:
        print("fngw serve: --pool and --workers must be at least 1, --max-queue at least 0", file=sys.stderr)
        return EXIT_USAGE
    # The master's instance folder (exec keeps our pid), which its on_exit removes.
    runtime = InstancePaths(os.getpid()).root
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    manifest = runtime / "serve.yaml"
    options = {
        "pool": args.pool,
        "timeout": args.timeout,
        "max_queue": args.max_queue,
        "kernel_api": args.kernel_api,
        "log_format": args.log_format,
        "watch": args.reload,
    }
    manifest.write_text(serve_manifest(notebooks, **options), encoding="utf-8")
    if args.reload and any(Path(a).is_dir() for a in args.notebooks):  # the watcher follows the folders
        arguments = [str(Path(a).resolve()) for a in args.notebooks]
        names = {str(path): name for name, path in unique_names(notebooks).items()}
        spec = {"arguments": arguments, "options": options, "names": names}
        InstancePaths(os.getpid()).serve_spec.write_text(json.dumps(spec), encoding="utf-8")
    result = _check(str(manifest), offline=False, strict=True)
    problem = None
    if result is None or result.deployment is None:
        problems = result.problems if result else []
        problem = render_generated(problems, str(manifest), "fngw serve", " ".join(args.notebooks))
    elif not result.deployment.plan.routes:
        problem = f"fngw serve: {' '.join(args.notebooks)}: no annotated cell (such as `# GET /hello`)"
    if problem is not None:
        shutil.rmtree(runtime, ignore_errors=True)  # no gunicorn will run to remove it
        print(problem, file=sys.stderr)
        return EXIT_INVALID
    port = args.port if args.port is not None else int(os.environ.get("PORT") or 8888)
    env = {**os.environ, "FNGW_MANIFEST": str(manifest)}
    if args.log_format_given:  # a flag on this command line wins over the environment's FNGW_LOG_FORMAT
        env["FNGW_LOG_FORMAT"] = args.log_format
    argv = [
        sys.executable, "-m", "gunicorn", "-c", "python:fngw.server.gunicorn_conf",
        "--bind", f"{args.host}:{port}", "--workers", str(args.workers), "fngw.wsgi",
    ]  # fmt: skip
    if len(notebooks) > 1:
        print(f"fngw serve: {len(notebooks)} notebooks, each under /NAME:", file=sys.stderr)
        for name, path in sorted(unique_names(notebooks).items()):
            print(f"  /{name}  {os.path.relpath(path)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
    return EXIT_USAGE  # not reached


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
