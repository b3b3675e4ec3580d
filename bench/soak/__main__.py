"""``python -m bench.soak``: see :mod:`bench.soak` for the method and what is printed."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import RedisServer, fail, free_port
from bench.latency.__main__ import (
    REPO_ROOT,
    bench_env,
    children,
    ensure_database,
    gunicorn,
    machine_facts,
    manage,
    table,
    versions,
)
from bench.soak.traffic import (
    EVENT_MODELS,
    Answer,
    AnswerLog,
    Pacer,
    event_totals,
    p99_ms,
    run_shoppers,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_soak"
VAR_DIR = REPO_ROOT / "var" / "bench-soak"
#: Seconds after a fault ends that still count as "during" it (reconnects, a new worker's start).
SETTLE_SECONDS = 2.0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description="Mixed traffic for minutes with "
                                "Redis restarted twice and a gunicorn worker killed; see bench/soak/__init__.py.")
    p.add_argument("--minutes", type=float, default=10.0, help="Length of the soak (default 10).")
    p.add_argument("--rps", type=float, default=None,
                   help="Requests per second over all shoppers (default: --load-share of a probe's throughput).")
    p.add_argument("--probe-seconds", type=float, default=20.0, help="Length of the probe (default 20).")
    p.add_argument("--load-share", type=float, default=0.5,
                   help="Share of the probe's throughput to soak at (default 0.5).")
    p.add_argument("--shoppers", type=int, default=16, help="Shopper threads (default 16).")
    p.add_argument("--outage-seconds", type=float, default=5.0, help="Seconds Redis stays down (default 5).")
    p.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                   help=f"PostgreSQL database of the soak, created when missing (default {DEFAULT_DATABASE_URL}).")
    p.add_argument("--catalog-limit", type=int, default=2000, help="Icecat products loaded (default 2000).")
    p.add_argument("--skip-setup", action="store_true", help="Do not load the catalog and build again.")
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3).")
    p.add_argument("--threads", type=int, default=4, help="Threads per gthread worker (default 4).")
    p.add_argument("--seed", type=int, default=1, help="Seed of the shoppers (default 1).")
    args = p.parse_args(argv)
    if args.minutes <= 0 or (args.rps is not None and args.rps <= 0) or args.shoppers < 1:
        raise fail("--minutes, --rps and --shoppers must be positive.")
    if not 0 < args.load_share <= 1:
        raise fail("--load-share must be in (0, 1].")
    args.worker_class = "gthread"  # what bench.latency's gunicorn() reads
    return args


@dataclass
class Fault:
    name: str
    start: float
    end: float
    note: str = ""


def _count_rows(env: dict[str, str]) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-m", "bench.soak.counts"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise fail(f"counting the stored rows failed:\n{proc.stderr[-3000:]}", 1)
    return json.loads(proc.stdout)


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    # As the worker of tests/test_worker.py: both queues, one process, no chatter.
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "shop_search", "worker", "-Q", "default,gpu", "--pool", "solo",
             "-c", "1", "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "WARNING",
             "-n", f"soak-{os.getpid()}@%h"],
            cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _traffic(base: str, args: argparse.Namespace, seconds: float, *, rps: float | None, seed: int,
             during=None) -> list[Answer]:
    """Shoppers for ``seconds``; ``during(t0)`` runs in this thread meanwhile (the faults)."""
    answers = AnswerLog()
    stop = threading.Event()
    threads = run_shoppers(base, threads=args.shoppers, stop=stop, record=answers.record, seed=seed,
                           pace=Pacer(rps) if rps else None)
    t0 = time.monotonic()
    try:
        if during is not None:
            during(t0)
        stop.wait(max(0.0, t0 + seconds - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    return answers


def _window(answers: list[Answer], start: float, end: float, kinds=("suggest", "search", "events")) -> list[Answer]:
    return [a for a in answers if start <= a.started < end and a.kind in kinds and a.status is not None]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.soak", *argv])
    started = time.monotonic()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    pg_version = ensure_database(args.database_url)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, RedisServer(Path(tmp) / "redis") as redis:
        args.redis_url = redis.url
        env = bench_env(args)
        env.update({
            "BENCH_VAR_DIR": str(VAR_DIR),
            # Every shopper comes from 127.0.0.1: the per-client throttles must not be what is measured.
            "THROTTLE_SEARCH": "1000000/min", "THROTTLE_EVENTS": "1000000/min",
            "THROTTLE_HISTORY": "1000000/min", "THROTTLE_SUGGEST": "1000000/min",
        })
        manage(env, "migrate", "--noinput")
        if not args.skip_setup:
            for step in (("catalog_load_icecat", "--limit", str(args.catalog_limit), "--no-progress"),
                         ("suggestions_rebuild_index", "--no-progress"), ("suggestions_build", "--no-progress")):
                print(f"setup: {step[0]} …", flush=True)
                manage(env, *step)
        worker_log, web_log = VAR_DIR / "worker.log", VAR_DIR / "gunicorn.log"
        worker_log.write_text("")
        worker = _start_worker(env, worker_log)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        try:
            with gunicorn(args, env, port, web_log) as server:
                rps, probe_note = args.rps, "given (--rps)"
                if rps is None:
                    probe = _traffic(base, args, args.probe_seconds, rps=None, seed=args.seed + 10_000)
                    answered = [a for a in probe if a.status is not None]
                    throughput = len(answered) / args.probe_seconds
                    rps = max(1.0, args.load_share * throughput)
                    probe_note = (f"{args.load_share:.0%} of {throughput:.0f} req/s found by a {args.probe_seconds:.0f} s "
                                  f"closed-loop probe ({args.shoppers} shoppers, p99 {_fmt(p99_ms(answered))} ms)")
                print(f"soak: {args.minutes:g} min at {rps:.0f} req/s ({probe_note})", flush=True)
                before = _count_rows(env)
                faults: list[Fault] = []
                seconds = 60.0 * args.minutes

                def inject(t0: float) -> None:
                    plan = [(0.25, "redis"), (0.45, "worker"), (0.65, "redis")]
                    for share, kind in plan:
                        time.sleep(max(0.0, t0 + share * seconds - time.monotonic()))
                        if kind == "redis":
                            start = time.monotonic()
                            redis.stop()
                            time.sleep(args.outage_seconds)
                            redis.start()
                            n = sum(f.name.startswith("Redis") for f in faults) + 1
                            faults.append(Fault(f"Redis restart {n}", start, time.monotonic()))
                        else:
                            pids = sorted(children(server.pid))
                            victim = random.Random(args.seed).choice(pids)
                            start = time.monotonic()
                            os.kill(victim, signal.SIGKILL)
                            # Down until the master has started a replacement (a pid not seen before).
                            deadline = start + 30
                            while time.monotonic() < deadline and not set(children(server.pid)) - set(pids):
                                time.sleep(0.05)
                            faults.append(Fault("gunicorn worker kill -9", start, time.monotonic(),
                                                f"pid {victim}"))

                answers = _traffic(base, args, seconds, rps=rps, seed=args.seed, during=inject)
                t_end = max(a.ended for a in answers)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
        after_rows = _count_rows(env)

    # -- judge ---------------------------------------------------------------------------
    kill = next(f for f in faults if f.name.startswith("gunicorn"))
    in_flight_at_kill = [a for a in answers if a.status is None and a.started <= kill.start <= a.ended + 0.05]
    other_unanswered = [a for a in answers if a.status is None and a not in in_flight_at_kill]
    server_errors = [a for a in answers if a.status is not None and a.status >= 500]
    accepted, unanswered_events = event_totals(answers)
    stored = {kind: after_rows[model] - before[model] for kind, model in EVENT_MODELS.items()}
    lost = {kind: max(0, accepted[kind] - stored[kind]) for kind in EVENT_MODELS}
    searched = sum(1 for a in answers if a.kind == "search" and a.status == 200)
    searches_stored = after_rows["SearchEvent"] - before["SearchEvent"]
    answered = [a for a in answers if a.kind in ("suggest", "search") and a.status == 200]
    degraded = [a for a in answered if a.degraded]

    print()
    print("## Soak with faults (python -m bench.soak)")
    print()
    print(f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}")
    print(f"command: {command}")
    for fact in machine_facts():
        print(f"machine: {fact}")
    print(f"software: PostgreSQL {pg_version}, {versions()}")
    print(f"server: gunicorn {args.workers} × gthread ({args.threads} threads), bench.latency.settings, "
          f"own redis-server on :{redis.port}, 1 celery worker; {args.catalog_limit} Icecat products")
    print(f"load: {len(answers)} requests in {t_end - started_traffic(answers):.0f} s at {rps:.0f} req/s target "
          f"({probe_note}), {args.shoppers} shopper threads")
    print()
    statuses = Counter((a.kind, "no answer" if a.status is None else a.status) for a in answers)
    print(table(["kind", "status", "requests"], [[k, s, n] for (k, s), n in sorted(statuses.items(), key=str)]))
    print()
    print(f"degraded: {len(degraded)} of {len(answered)} suggest/search answers "
          f"({100 * len(degraded) / max(1, len(answered)):.2f}%)")
    rows = []
    first = min(f.start for f in faults)
    base_window = _window(answers, started_traffic(answers), first)
    rows.append(["before the faults", "-", _fmt(p99_ms(base_window)), "-", "-", ""])
    ordered = sorted(faults, key=lambda f: f.start)
    for n, fault in enumerate(ordered):
        nxt = ordered[n + 1].start if n + 1 < len(ordered) else t_end
        during = _window(answers, fault.start, fault.end + SETTLE_SECONDS)
        after = _window(answers, fault.end + SETTLE_SECONDS, nxt)
        during_answers = [a for a in during if a.kind in ("suggest", "search") and a.status == 200]
        share = 100 * sum(1 for a in during_answers if a.degraded) / max(1, len(during_answers))
        rows.append([fault.name, f"{fault.end - fault.start:.1f}", _fmt(p99_ms(during)), _fmt(p99_ms(after)),
                     f"{share:.0f}", fault.note])
    print()
    print(table(["window", "fault s", "p99 ms during", "p99 ms after", "degraded % during", "note"], rows))
    print()
    print(table(["event", "accepted (202)", "sent, no answer", "stored", "lost"],
                [[k, accepted[k], unanswered_events[k], stored[k], lost[k]] for k in EVENT_MODELS]
                + [["search (200)", searched, "-", searches_stored, max(0, searched - searches_stored)]]))
    print()
    print(f"5xx: {len(server_errors)}; no answer: {len(in_flight_at_kill)} in flight in the killed worker, "
          f"{len(other_unanswered)} other")
    print(f"(total {time.monotonic() - started:.0f} s; logs in var/bench-soak/)")
    bad = (server_errors or other_unanswered or any(lost.values()) or searched > searches_stored)
    if bad:
        examples = [a.error for a in other_unanswered[:3]]
        print(f"FAILED: 5xx {len(server_errors)}, unexplained no-answer {len(other_unanswered)} {examples}, "
              f"lost events {lost}, lost searches {max(0, searched - searches_stored)}", file=sys.stderr)
        return 1
    if not accepted["suggestion_click"] or not accepted["product_click"]:
        # No suggestion was shown or no search found a product: the index is
        # missing or empty (e.g. --skip-setup on a new checkout), not a real load.
        print("FAILED: no suggestion or product was clicked: build the index first (run without --skip-setup)",
              file=sys.stderr)
        return 1
    return 0


def started_traffic(answers: list[Answer]) -> float:
    return min(a.started for a in answers)


if __name__ == "__main__":
    sys.exit(main())
