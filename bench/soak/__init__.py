"""``python -m bench.soak``: mixed shopper traffic for minutes, with Redis restarts and a killed web worker.

The server is the one ``bench.latency`` measures (gunicorn ``--workers`` x
gthread ``--threads``, :mod:`bench.latency.settings`: ``DEBUG=False``,
PostgreSQL, django-redis, tantivy), with a ``celery worker`` on both queues,
a PostgreSQL database of its own (``--database-url``, default
``bench_soak``) and a private ``redis-server`` on a free port
(:class:`bench.common.RedisServer`) for cache, throttles and broker. The
catalog is a slice of the shipped Icecat data (``--catalog-limit``); the index
lives under ``var/bench-soak/``.

Traffic: shoppers of :mod:`bench.soak.traffic` (suggest as they type, the
shown list and the chosen suggestion, a search, a click on a result), from
``--shoppers`` threads paced to ``--rps`` requests per second over all
threads. Without ``--rps``, a probe of ``--probe-seconds`` runs the same
traffic as fast as the server answers (closed loop, like ``bench.latency``'s
wrk) and the soak runs at ``--load-share`` of the throughput it found: the
load the server sustains with room for the faults.

Faults, at fixed shares of ``--minutes``: Redis stopped for
``--outage-seconds`` and started again (empty) at 25% and at 65%, one gunicorn
worker killed with ``kill -9`` at 45% (gunicorn starts a new one).

Printed: requests by kind and status, the share of suggest and search answers
marked ``degraded``, p99 latency before the first fault, during and after each
fault, events accepted (202) against rows stored, and searches answered
against searches recorded. Exit status 1 on any 5xx, any request without an
answer other than those in flight in the killed worker, or any accepted event
or answered search missing from the database.
"""
