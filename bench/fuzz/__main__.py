"""``python -m bench.fuzz``: see :mod:`bench.fuzz` for what it does and prints."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Sequence

from bench.common import command_line, django_environment, fail, markdown_table

SETTINGS_MODULE = "bench.fuzz.settings"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    p.add_argument("--requests", type=int, default=10_000,
                   help="Generated requests to send in all (default 10000).")
    p.add_argument("--base-url", default=None,
                   help="A running server, e.g. http://127.0.0.1:8000 (default: the app in this process).")
    p.add_argument("--per-round", type=int, default=100,
                   help="Most requests per operation and mode in one round (default 100).")
    p.add_argument("--seed", type=int, default=1, help="Hypothesis seed of the first round (default 1).")
    p.add_argument("--catalog-limit", type=int, default=500,
                   help="In process: Icecat products loaded (default 500).")
    p.add_argument("--keep-tmp", action="store_true",
                   help="In process: keep the temporary database and index folder.")
    args = p.parse_args(argv)
    if args.requests < 1 or args.per_round < 1:
        raise fail("--requests and --per-round must be at least 1.")
    return args


def prepare_in_process(catalog_limit: int):
    """A small shop behind the in-process app: products, an index, history and suggestions."""
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    from suggestions import services

    call_command("catalog_load_icecat", "--limit", str(catalog_limit), "--no-progress", verbosity=0)
    services.rebuild_index()
    for n in range(5):
        for query in ("usb cable", "laptop", "toner", "hp laserjet", "monitor 27"):
            services.search(query, session_key=f"bench-fuzz-{n}")
    services.build_suggestions()
    return get_wsgi_application()


def run(args: argparse.Namespace, *, app=None, session=None):
    from bench.fuzz.runner import MODES, FuzzReport, fuzz_operation, load_schema, operations

    schema = load_schema(app=app, base_url=args.base_url, seed=args.seed)
    ops = operations(schema)
    report = FuzzReport()
    by_mode: dict[str, Counter] = {str(m): Counter() for m in MODES}
    refused_positive = Counter()
    rounds, seed = 0, args.seed
    while report.total < args.requests:
        before = report.total
        for op in ops:
            for mode in MODES:
                remaining = args.requests - report.total
                if remaining <= 0:
                    break
                sent = report.sent[op.label]
                codes = Counter(report.statuses[op.label])
                fuzz_operation(op, mode, report, max_examples=min(args.per_round, remaining), seed=seed,
                               base_url=args.base_url, session=session)
                by_mode[str(mode)][op.label] += report.sent[op.label] - sent
                if mode.is_positive:
                    new = Counter(report.statuses[op.label])
                    new.subtract(codes)
                    refused_positive[op.label] += sum(n for c, n in new.items() if isinstance(c, int) and 400 <= c < 500)
        rounds += 1
        seed += 1
        print(f"round {rounds}: {report.total} requests, {report.server_errors} server errors, "
              f"{report.schema_violations} schema violations", flush=True)
        if report.total == before:
            raise fail("no operation produced a request in a whole round.", 1)
    return report, ops, by_mode, refused_positive, rounds


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    started = time.monotonic()
    if args.base_url:
        import requests

        with requests.Session() as session:
            result = run(args, session=session)
        target = args.base_url
    else:
        with django_environment(keep=args.keep_tmp, settings_module=SETTINGS_MODULE):
            import logging

            logging.getLogger("django.request").setLevel(logging.CRITICAL)  # one 4xx line per request
            app = prepare_in_process(args.catalog_limit)
            result = run(args, app=app)
        target = f"in process ({SETTINGS_MODULE}, {args.catalog_limit} Icecat products)"
    report, ops, by_mode, refused_positive, rounds = result

    print()
    print("## API fuzzing (python -m bench.fuzz)")
    print()
    print(f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}")
    print(f"command: {command_line('bench.fuzz', argv)}")
    print(f"target: {target}; {rounds} rounds of up to {args.per_round} requests per operation and mode, "
          f"seeds {args.seed}..{args.seed + rounds - 1}")
    print()
    rows = []
    for op in ops:
        codes = report.statuses[op.label]
        shown = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items(), key=lambda kv: str(kv[0])))
        positive = by_mode["positive"][op.label]
        rows.append([op.label, report.sent[op.label], positive, by_mode["negative"][op.label],
                     f"{refused_positive[op.label]}/{positive}" if positive else "-", shown])
    print(markdown_table(["operation", "requests", "positive", "negative", "positive refused (4xx)",
                          "status codes"], rows))
    print()
    print(f"requests: {report.total}; server errors (5xx): {report.server_errors}; "
          f"schema violations: {report.schema_violations}; no answer: {report.transport_errors}")
    for example in report.examples:
        print(f"- {example}")
    print(f"(total {time.monotonic() - started:.0f} s)")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
