"""``python -m bench.latency``: latency and throughput of the suggest endpoint.

The suggest endpoint (``api/suggestions/suggest/?q=``) is served by gunicorn
with production-like settings (:mod:`bench.latency.settings`: PostgreSQL, the
django-redis cache, tantivy, ``DEBUG=False``, throttling on) and driven by
``wrk`` over loopback with real prefixes: 1..10 characters of Best Buy search
log queries (read at run time from ``--data-dir``) and of Icecat product
titles (from the catalog database), sampled so that popular prefixes repeat and
hit the answer cache while the long tail misses. The baseline is a trivial DRF
endpoint (``bench/trivial/``, :mod:`bench.latency.urls`) served by the same
gunicorn in the same run, in alternating rounds.

Printed: requests/s and p50/p95/p99 latency of both endpoints (medians over the
rounds), the suggest/trivial throughput ratio, the answer-cache hit ratio and
Redis commands per request, CPU use of server and load generator, machine
facts, the date and the exact command. Targets: suggest keeps >= 70% of the
trivial endpoint's throughput, with p99 < 25 ms at that load.

See ``python -m bench.latency --help`` for the options and
:mod:`bench.latency.__main__` for the method and the choices made.
"""
