"""``python -m bench.latency.gc_pauses``: garbage-collector pauses of a web process serving keystrokes.

The state of ``python -m bench.latency`` (run that once first) and the suggest
requests of :mod:`bench.latency.profile`, served in process through Django's
WSGI handler, one after another, in two fresh processes:

* ``as is``: Django loaded, nothing else done, as a process without a warm-up;
* ``prepared``: :func:`suggestions.services.prepare_web_process` called first,
  as ``shop_search/wsgi.py`` does at start (warm-up through the request path,
  then :func:`gc.freeze`).

Both serve ``--warmup`` requests, then ``--requests`` more while a
:data:`gc.callbacks` hook times every collection. Printed per process: the
collections of each generation with their median and longest pause, and the
requests' wall-time percentiles. Serial requests show the pauses themselves;
under load (``python -m bench.latency``) every request queued behind a pause
waits for it, which is what moves the p99.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.common import markdown_table

MODES = ("as is", "prepared")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.latency.gc_pauses", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20000, help="Requests timed (default 20000).")
    p.add_argument("--warmup", type=int, default=3000, help="Requests served before timing (default 3000).")
    p.add_argument("--data-dir", default=None, help="Shared data folder (default SHOP_DATA_DIR or ../shared/data).")
    p.add_argument("--seed", type=int, default=1, help="Random seed of the requests (default 1).")
    p.add_argument("--young-threshold", type=int, default=None,
                   help="Set the youngest generation's collection threshold in both processes "
                        "(gc.set_threshold; default: Python's, 700).")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


def child(args: argparse.Namespace) -> dict:
    """One process's figures (run in a fresh interpreter by :func:`main`)."""
    from bench.latency import profile

    options = profile.parse_args(["--seed", str(args.seed)] + (["--data-dir", args.data_dir] if args.data_dir else []))
    handler, cookie, envs = profile.prepare("suggest", options, args.warmup + args.requests)
    prepared = None
    if args.child == "prepared":
        from suggestions import services

        prepared = services.prepare_web_process()
    if args.young_threshold:
        gc.set_threshold(args.young_threshold, *gc.get_threshold()[1:])
    for env in envs[: args.warmup]:
        profile.serve(handler, env, cookie)
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses[info["generation"]].append((time.perf_counter() - started.pop()) * 1e3)

    gc.callbacks.append(timer)
    latencies = []
    for env in envs[args.warmup:]:
        begin = time.perf_counter()
        profile.serve(handler, env, cookie)
        latencies.append((time.perf_counter() - begin) * 1e3)
    gc.callbacks.remove(timer)
    latencies.sort()
    return {"mode": args.child, "pauses": pauses, "frozen": gc.get_freeze_count(),
            "tracked": len(gc.get_objects()), "prepared": prepared, "thresholds": gc.get_threshold(),
            "latency": {"p50": _percentile(latencies, 0.5), "p99": _percentile(latencies, 0.99),
                        "p99.9": _percentile(latencies, 0.999), "max": latencies[-1]}}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    print(f"# python -m bench.latency.gc_pauses {' '.join(argv)}".rstrip())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; load average "
          f"{os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; {args.warmup} warm-up and {args.requests} timed "
          f"suggest requests per process, serial; thresholds "
          f"{(args.young_threshold, *gc.get_threshold()[1:]) if args.young_threshold else gc.get_threshold()}")
    results = []
    for mode in MODES:
        out = subprocess.run([sys.executable, "-m", "bench.latency.gc_pauses", *argv, "--child", mode],
                             check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for r in results:
        for generation in ("0", "1", "2"):
            values = r["pauses"][generation]
            rows.append([r["mode"], generation, str(len(values)),
                         f"{statistics.median(values):.2f}" if values else "–",
                         f"{max(values):.2f}" if values else "–", f"{sum(values):.0f}"])
    print()
    print(markdown_table(["process", "generation", "collections", "median ms", "longest ms", "total ms"], rows))
    print()
    print(markdown_table(["process", "objects frozen", "objects tracked at the end", "p50 ms", "p99 ms",
                          "p99.9 ms", "max ms"],
                         [[r["mode"], str(r["frozen"]), str(r["tracked"]),
                           *(f"{r['latency'][k]:.2f}" for k in ("p50", "p99", "p99.9", "max"))] for r in results]))
    prepared = next(r["prepared"] for r in results if r["prepared"])
    print(f"\nprepare_web_process: {prepared['answered']} prefixes answered in {prepared['seconds']:.1f} s"
          f"{', failed: ' + ', '.join(prepared['failed']) if prepared['failed'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
