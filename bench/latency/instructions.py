"""``python -m bench.latency.instructions``: CPU instructions per request, counted, not timed.

Wall and CPU time on a small shared machine drift by more than a request-path
change is worth (the same code gave trivial/suggest capacity ratios of 0.81 and
0.87 ten minutes apart on 2 cores, bench/RESULTS.md). Instructions executed do
not depend on what else the machine runs: valgrind's callgrind counts them. They
still move by up to 4% between runs of the same code (what depends on the wall
clock, such as cache expiry and throttle windows, meets a 50-fold slowdown), so
a difference smaller than that needs repeated runs.

Method: the state of ``python -m bench.latency`` (run that once first), the
requests of :mod:`bench.latency.profile` (same sampling, same seed, served in
process through Django's WSGI handler with every middleware, DRF, the view and
the renderer). For the endpoint and for the trivial endpoint, this command runs
itself twice under ``valgrind --tool=callgrind``: both runs start Django,
invalidate the answer cache and serve the same ``--warmup`` requests; the
second then serves ``--requests`` more. The difference of the two totals,
divided by ``--requests``, is what one request costs: start-up, imports and
warm-up cancel out. The runs are sequential (the answer cache is shared).

What it leaves out: the Redis and PostgreSQL servers' own work (other
processes; the load test puts it at 0.01 ms of 1.2 ms CPU per suggest request)
and gunicorn's socket handling (the same for every endpoint). Instruction counts
are a proxy for CPU time, not a measure of it (cache misses and branch
mispredictions differ per instruction), so the ratio is read beside the load
test's, not instead of it. ``PYTHONHASHSEED`` is fixed so that runs compare.

Each run takes a minute or two (Python under callgrind runs 50 to 100 times
slower): the default 300 warm-up and 300 counted requests take about eight
minutes for the four runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.latency.profile import ENDPOINTS

#: callgrind's summary line on stderr: ``==123== I   refs:      2,795,600,056``.
I_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.latency.instructions",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", choices=[e for e in ENDPOINTS if e != "trivial"], default="suggest",
                   help="Endpoint counted beside the trivial one (default suggest).")
    p.add_argument("--requests", type=int, default=300, help="Requests counted (default 300).")
    p.add_argument("--warmup", type=int, default=300, help="Requests served before counting (default 300).")
    p.add_argument("--cookies", action="store_true", help="Requests carry a shopper cookie (returning shoppers).")
    p.add_argument("--batch", type=int, default=20, help="Events per POST for --endpoint events (default 20).")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="Shared data folder holding bestbuy/train.csv (default: $SHOP_DATA_DIR, else ../shared/data).")
    p.add_argument("--seed", type=int, default=1, help="Random seed of the sampling (default 1).")
    p.add_argument("--valgrind", default="valgrind", help="valgrind executable (default: valgrind on PATH).")
    # Internal: one counted run, under valgrind (the outer command starts these).
    p.add_argument("--inner", choices=ENDPOINTS, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.requests < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--requests and --batch must be at least 1, --warmup not negative")
    return args


def inner(args: argparse.Namespace) -> int:
    """Serve ``--warmup`` then ``--count`` requests of ``--inner`` (under callgrind)."""
    from bench.latency.profile import prepare, run

    # The same list in both runs of a pair (same seed, same length): only --count differs.
    handler, cookie, envs = prepare(args.inner, args, args.warmup + args.requests)
    from suggestions.serving import invalidate_cache

    invalidate_cache()
    n = args.warmup + args.count
    _wall, _cpu, bad = run(handler, envs[:n], n, cookie) if n else (0.0, 0.0, 0)
    print(f"served {args.warmup} + {args.count} requests of {args.inner}; non-2xx {bad}", file=sys.stderr)
    return 1 if bad else 0


def count(args: argparse.Namespace, endpoint: str, n: int) -> int:
    """Instructions of one run of :func:`inner` under callgrind."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        cmd = [args.valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out",
               sys.executable, "-m", "bench.latency.instructions", "--inner", endpoint, "--count", str(n),
               "--requests", str(args.requests), "--warmup", str(args.warmup), "--seed", str(args.seed),
               "--batch", str(args.batch)]
        if args.cookies:
            cmd.append("--cookies")
        if args.data_dir:
            cmd += ["--data-dir", str(args.data_dir)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    found = I_REFS.findall(proc.stderr)
    if proc.returncode != 0 or not found:
        tail = "\n".join([line for line in proc.stderr.splitlines() if not line.startswith("==")][-15:])
        raise SystemExit(f"error: the counted run of {endpoint} ({n} requests) failed (exit {proc.returncode}):\n{tail}")
    return int(found[-1].replace(",", ""))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.inner:
        return inner(args)
    if not shutil.which(args.valgrind):
        raise SystemExit(f"error: {args.valgrind} not found (Debian: apt-get install valgrind).")
    print(f"# python -m bench.latency.instructions {' '.join(argv)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; load average "
          f"{os.getloadavg()[0]:.2f} (does not affect the counts); {os.cpu_count()} CPUs; "
          f"{'returning shoppers (cookie)' if args.cookies else 'first visits'}; "
          f"{args.warmup} warm-up + {args.requests} counted requests per endpoint")
    per_request = {}
    for endpoint in (args.endpoint, "trivial"):
        started = time.monotonic()
        base = count(args, endpoint, 0)
        total = count(args, endpoint, args.requests)
        per_request[endpoint] = (total - base) / args.requests
        print(f"{endpoint:>8}: {per_request[endpoint] / 1e6:8.3f} M instructions/request "
              f"(runs: {base:,} and {total:,}; {time.monotonic() - started:.0f} s)", flush=True)
    ratio = per_request["trivial"] / per_request[args.endpoint]
    print(f"trivial/{args.endpoint} instruction ratio: {ratio:.3f} "
          f"({args.endpoint} costs {per_request[args.endpoint] / per_request['trivial']:.3f}× the trivial endpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
