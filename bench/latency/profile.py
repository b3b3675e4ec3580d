"""``python -m bench.latency.profile``: where a request of one endpoint spends its time.

The same state as ``python -m bench.latency`` (its PostgreSQL database, Redis
cache, tantivy indexes and :mod:`bench.latency.settings`; run that command once
first), the same kind of traffic, but served in this process: each request
goes through Django's WSGI handler (every middleware, DRF, the view, the
renderer) without gunicorn or a socket, under :mod:`cProfile`.

Printed: wall and CPU microseconds per request of the endpoint and of the
trivial endpoint in the same run (profiler off), then the CPU-time profile
(profiler on, which inflates small calls: read it for where time goes, not for totals):
the functions with the most own time, and the cumulative time of the
project's and Django's layers (middleware, authentication, throttle, the
service call, rendering).

Endpoints:

* ``suggest``: prefixes of Best Buy searches and Icecat titles (as the load test).
* ``search``: whole Best Buy searches (every one is recorded in the history,
  as in production).
* ``events``: ``POST events/`` with batches of ``--batch`` events (impressions,
  suggestion clicks and product clicks on catalog products).
* ``trivial``: ``bench/trivial/``, the baseline.

``--cookies`` makes every request carry a shopper cookie (a returning shopper);
without it requests are first visits, as in the load test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import resolve_data_dir

ENDPOINTS = ("suggest", "search", "events", "trivial")
#: Timed slices per endpoint, alternating with the trivial endpoint's.
SLICES = 20
SEARCH_PATH = "/api/suggestions/search/"
EVENTS_PATH = "/api/suggestions/events/"
#: Layers whose cumulative time is printed (a substring of ``file:function``).
LAYERS = (
    ("WSGI handler (whole request)", "django/core/handlers/wsgi.py:__call__"),
    ("middleware chain + view", "django/core/handlers/base.py:get_response"),
    ("ShopperCookieMiddleware", "suggestions/middleware.py:__call__"),
    ("session middleware", "django/contrib/sessions/middleware.py:process_response"),
    ("CSRF middleware", "django/middleware/csrf.py:process_view"),
    ("DRF dispatch", "rest_framework/views.py:dispatch"),
    ("DRF initial (auth, permissions, throttles)", "rest_framework/views.py:initial"),
    ("throttle", "suggestions/api/throttling.py:allow_request"),
    ("query/body serializer", "rest_framework/serializers.py:is_valid"),
    ("services.suggest", "suggestions/services.py:suggest"),
    ("services.search", "suggestions/services.py:search"),
    ("services.record_events", "suggestions/services.py:record_events"),
    ("search response serializer", "rest_framework/serializers.py:data"),
    ("rendering", "rest_framework/response.py:rendered_content"),
    ("database (execute)", "django/db/backends/utils.py:execute"),
    ("cache (django-redis)", "django_redis/client/default.py:get"),
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.latency.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", choices=ENDPOINTS, default="suggest", help="Endpoint to profile (default suggest).")
    p.add_argument("--requests", type=int, default=3000, help="Requests timed and profiled (default 3000).")
    p.add_argument("--warmup", type=int, default=1000, help="Requests before timing (default 1000).")
    p.add_argument("--batch", type=int, default=20, help="Events per POST for --endpoint events (default 20).")
    p.add_argument("--cookies", action="store_true", help="Requests carry a shopper cookie (returning shoppers).")
    p.add_argument("--cold", action="store_true",
                   help="Invalidate the suggest answer cache before every timed slice and the profile: the "
                   "misses' path (pinned, ranked, engine, cache write) instead of the steady state.")
    p.add_argument("--top", type=int, default=30, help="Functions listed by own time (default 30).")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="Shared data folder (holds bestbuy/train.csv); default SHOP_DATA_DIR or ../shared/data.")
    p.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
    p.add_argument("--output", type=Path, default=None, help="Also write the raw profile (pstats) here.")
    args = p.parse_args(argv)
    if args.requests < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--requests and --batch must be at least 1, --warmup not negative.")
    return args


def fail(message: str) -> SystemExit:
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(2)


def _queries(train_csv: Path) -> list[str]:
    import csv

    with train_csv.open(newline="", encoding="utf-8") as fh:
        return [q for q in ((row.get("query") or "").strip() for row in csv.DictReader(fh)) if q]


def build_requests(endpoint: str, args: argparse.Namespace, n: int) -> list[dict]:
    """``n`` WSGI environ templates for ``endpoint`` (see the module docstring)."""
    from django.test import RequestFactory

    from bench.latency.__main__ import TRIVIAL_PATH, sample_prefixes
    from catalog.models import Product

    rng = random.Random(args.seed)
    factory = RequestFactory()
    data_dir = resolve_data_dir(args.data_dir)
    train_csv = data_dir / "bestbuy" / "train.csv"
    if endpoint in ("suggest", "search") and not train_csv.is_file():
        raise fail(f"the Best Buy search log was not found at {train_csv}; pass --data-dir.")
    envs = []
    if endpoint == "trivial":
        envs = [factory.get(TRIVIAL_PATH).environ for _ in range(n)]
    elif endpoint == "suggest":
        titles = list(Product.objects.values_list("title", flat=True)[:20000])
        traffic = sample_prefixes(train_csv, titles, samples=n, title_share=0.2, seed=args.seed)
        envs = [factory.get(path).environ for path in traffic.paths]
    elif endpoint == "search":
        queries = _queries(train_csv)
        envs = [factory.get(SEARCH_PATH + "?q=" + urllib.parse.quote(queries[rng.randrange(len(queries))],
                                                                   safe="")).environ for _ in range(n)]
    else:
        ids = [str(pk) for pk in Product.objects.values_list("pk", flat=True)[:5000]]
        if not ids:
            raise fail("the benchmark database has no products; run `python -m bench.latency` once first.")
        for _ in range(n):
            envs.append(factory.post(EVENTS_PATH, data=json.dumps({"events": event_batch(rng, ids, args.batch)}),
                                     content_type="application/json").environ)
    for env in envs:
        # One of 1,000 shopper addresses (the throttle keeps a short history per shopper).
        c = rng.randrange(1000)
        env["REMOTE_ADDR"] = f"10.0.{c // 256}.{c % 256}"
        env["HTTP_HOST"] = env["SERVER_NAME"] = "127.0.0.1"
    return envs


def event_batch(rng: random.Random, product_ids: list[str], size: int) -> list[dict]:
    """``size`` events of one typical page view: impressions, a suggestion click, product clicks."""
    events = []
    for i in range(size):
        request_id = uuid.UUID(int=rng.getrandbits(128)).hex
        kind = ("impression", "impression", "suggestion_click", "product_click")[i % 4]
        if kind == "impression":
            events.append({"type": kind, "request_id": request_id, "prefix": "lap",
                           "suggestions": ["laptop", "laptop bag", "lapdesk"]})
        elif kind == "suggestion_click":
            events.append({"type": kind, "request_id": request_id, "prefix": "lap", "suggestion": "laptop",
                           "position": 0})
        else:
            events.append({"type": kind, "request_id": request_id, "query": "laptop",
                           "product_id": rng.choice(product_ids), "position": rng.randrange(10)})
    return events


def serve(handler: Callable, env: dict, cookie: str | None) -> int:
    environ = dict(env)
    body = env.get("wsgi.input")
    if body is not None:
        # RequestFactory's FakePayload is read once: give every call its own.
        from django.test.client import FakePayload

        environ["wsgi.input"] = FakePayload(env["_bench_body"]) if "_bench_body" in env else body
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    status = []
    chunks = handler(environ, lambda s, h, exc_info=None: status.append(s))
    for _ in chunks:
        pass
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0].split()[0])


def run(handler: Callable, envs: list[dict], count: int, cookie: str | None) -> tuple[float, float, int]:
    """Serve ``count`` requests (cycling ``envs``); returns (wall µs, CPU µs) per request and non-2xx."""
    bad = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        code = serve(handler, envs[i % len(envs)], cookie)
        bad += not 200 <= code < 300
    return ((time.perf_counter() - wall) / count * 1e6, (time.process_time() - cpu) / count * 1e6, bad)


def shopper_cookie() -> str:
    from django.core import signing

    from suggestions.conf import app_settings
    from suggestions.middleware import COOKIE_SALT

    value = signing.get_cookie_signer(salt=app_settings.SHOPPER_COOKIE_NAME + COOKIE_SALT).sign("bench-shopper-1")
    return f"{app_settings.SHOPPER_COOKIE_NAME}={value}"


def prepare(endpoint: str, args: argparse.Namespace, n: int) -> tuple[Callable, str | None, list[dict]]:
    """Django on the benchmark's state: its WSGI handler, the shopper cookie
    (``args.cookies``) and ``n`` requests of ``endpoint`` (POST bodies kept so
    that every call can replay them). Also used by :mod:`bench.latency.instructions`."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.latency.settings"
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    from catalog.models import Product

    if not Product.objects.exists():
        raise fail("the benchmark database has no catalog; run `python -m bench.latency` once first.")
    envs = build_requests(endpoint, args, n)
    for env in envs:
        if "wsgi.input" in env and env.get("REQUEST_METHOD") == "POST":
            env["_bench_body"] = env["wsgi.input"].read(int(env["CONTENT_LENGTH"]))
    return WSGIHandler(), shopper_cookie() if args.cookies else None, envs


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    handler, cookie, envs = prepare(args.endpoint, args, args.warmup + args.requests)
    from suggestions.serving import invalidate_cache

    trivial = build_requests("trivial", args, 1000)
    print(f"# python -m bench.latency.profile {' '.join(argv)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; load average "
          f"{os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; {'returning shoppers (cookie)' if cookie else 'first visits'}"
          f"{'; answer cache invalidated before every slice (--cold)' if args.cold else ''}")
    warm = envs[: args.warmup] or envs
    timed = envs[args.warmup:] or envs
    run(handler, warm, len(warm), cookie)
    run(handler, trivial, 200, cookie)
    # Alternate endpoint and trivial in 20 slices each: drift hits both alike.
    figures = {"endpoint": [], "trivial": []}
    slice_n = max(1, args.requests // SLICES)
    for k in range(SLICES):
        part = timed[k * slice_n:(k + 1) * slice_n] or timed
        if args.cold:
            invalidate_cache()
        figures["endpoint"].append(run(handler, part, len(part), cookie))
        figures["trivial"].append(run(handler, trivial, slice_n, cookie))
    bad = sum(f[2] for f in figures["endpoint"])
    per_event = f" ({args.batch} events a request)" if args.endpoint == "events" else ""
    for name, runs in figures.items():
        label = args.endpoint if name == "endpoint" else "trivial"
        print(f"{label:>8}: wall {statistics.median(r[0] for r in runs):8.1f} µs/request, "
              f"CPU {statistics.median(r[1] for r in runs):8.1f} µs/request (median of {SLICES} slices)"
              + (per_event if name == "endpoint" else ""))
    ratio = statistics.median(t[1] / e[1] for t, e in zip(figures["trivial"], figures["endpoint"], strict=True))
    print(f"trivial/{args.endpoint} CPU ratio: {ratio:.2f} (median of the slices' ratios); non-2xx answers: {bad}")
    if args.endpoint == "events":
        print(f"events/s one process could store at this CPU cost: "
              f"{args.batch / statistics.median(e[1] for e in figures['endpoint']) * 1e6:.0f}")

    # CPU time, not wall time: waits on the socket and other processes of a busy
    # machine would otherwise swamp what the request itself costs.
    profiler = cProfile.Profile(time.process_time)
    if args.cold:
        invalidate_cache()
    profiler.enable()
    run(handler, timed, len(timed), cookie)
    profiler.disable()
    if args.output:
        profiler.dump_stats(str(args.output))
    stats = pstats.Stats(profiler)
    total = len(timed)
    print()
    print(f"## Cumulative time per request by layer (profiler on, {total} requests)")
    rows = {f"{Path(f).as_posix()}:{fn}": (ct, nc) for (f, _l, fn), (_cc, nc, _tt, ct, _callers)
            in stats.stats.items()}
    for label, key in LAYERS:
        matches = [(ct, nc) for k, (ct, nc) in rows.items() if k.endswith(key) or key in k]
        if matches:
            ct = sum(m[0] for m in matches)
            nc = sum(m[1] for m in matches)
            print(f"{label:<45} {ct / total * 1e6:9.1f} µs  ({nc / total:.2f} calls/request)")
    print()
    print(f"## Top {args.top} functions by own time")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(args.top)
    text = out.getvalue()
    start = text.find("   ncalls")
    print(text[start:] if start >= 0 else text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
