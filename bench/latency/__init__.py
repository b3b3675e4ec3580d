"""``python -m bench.latency``: the API endpoints under load, each beside a trivial endpoint.

The suggest, search and events endpoints are served by gunicorn with
production-like settings (:mod:`bench.latency.settings`: PostgreSQL, the
django-redis cache, tantivy, ``DEBUG=False``, the shop's throttles on) and
driven by ``wrk`` over loopback with real traffic read at run time from
``--data-dir``: suggest gets 1..10-character prefixes of Best Buy searches and
Icecat titles (popular prefixes repeat and hit the answer cache, the long tail
misses), search gets whole Best Buy searches (each recorded in the history),
events gets batches of impressions and clicks. By default set-up trains a
suggestion ranker through the learning loop, so suggest is measured with the
learned order in place. The baseline is a trivial DRF endpoint
(``bench/trivial/``, :mod:`bench.latency.urls`) served by the same gunicorn in
the same round, at each endpoint's own connection count.

Printed: requests/s and p50/p95/p99 latency of every run (medians over the
rounds), each endpoint's throughput and p99 ratio to the trivial endpoint
beside it, events stored per second, the answer-cache hit ratio, Redis commands
per request, CPU use of server, load generator, PostgreSQL and Redis, machine
facts, the date and the exact command, and the targets: suggest keeps >= 0.80
of the trivial endpoint's throughput with its p99 <= 1.5x the trivial one's;
search's median is under 15 ms at a load where the trivial endpoint's p99 is
under 20 ms; events stores >= 2,000 events/s.

``python -m bench.latency.profile`` profiles one endpoint in process (cProfile)
against the trivial one: where a request's CPU time goes.

See ``python -m bench.latency --help`` for the options and
:mod:`bench.latency.__main__` for the method and the choices made.
"""
