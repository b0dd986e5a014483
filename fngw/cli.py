"""The `fngw` command: `validate` manifests in CI, print `routes`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from fngw import __version__
from fngw.deployment import CheckResult, check_deployment
from fngw.manifest import Problem, manifest_schema, render
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

    routes = sub.add_parser("routes", help="print the table of routes a manifest serves")
    routes.add_argument("file", metavar="FILE")
    routes.add_argument("--offline", action="store_true", help="do not require kernelspecs to be installed")
    schema = sub.add_parser("schema", help="print the manifest's JSON Schema, or its reference as Markdown")
    schema.add_argument("--markdown", action="store_true", help="print the reference (docs/manifest.md)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "schema":
            return _schema(args)
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
    if results:
        print(render(results, fmt))
    if unreadable:
        return EXIT_USAGE
    invalid = any(p.severity == "error" for _, problems in results for p in problems)
    return EXIT_INVALID if invalid else EXIT_VALID


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
