"""``python -m bench.observability``: see :mod:`bench.observability` for what it measures."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from bench.common import command_line, django_environment, fail, markdown_table


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    p.add_argument("--calls", type=int, default=200_000, help="Calls per round of each update (default 200000).")
    p.add_argument("--requests", type=int, default=2_000, help="Requests per round of the warm suggest (default 2000).")
    p.add_argument("--rounds", type=int, default=7, help="Rounds; medians are reported (default 7).")
    args = p.parse_args(argv)
    if min(args.calls, args.requests, args.rounds) < 1:
        raise fail("--calls, --requests and --rounds must be at least 1.")
    return args


def per_call_ns(func: Callable[[], None], calls: int, rounds: int) -> float:
    def empty() -> None:
        return None

    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            empty()
        loop = time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        for _ in range(calls):
            func()
        samples.append((time.perf_counter_ns() - start - loop) / calls)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with django_environment():
        from django.test import Client
        from django.test.utils import override_settings

        from suggestions import metrics, services
        from suggestions.models import Suggestion

        for i in range(200):
            Suggestion.objects.create(text=f"printer model {i:03d}", source="history", status="approved", weight=i)
        services.publish_suggestions()

        counter = metrics.SUGGEST_ANSWERS.labels(source="local")
        histogram = metrics.REQUEST_SECONDS.labels(endpoint="bench")
        timed = metrics.observed("bench")(lambda: None)
        rows = [
            ["counter increment (labelled child)", f"{per_call_ns(counter.inc, args.calls, args.rounds):.0f} ns"],
            ["histogram observation", f"{per_call_ns(lambda: histogram.observe(0.002), args.calls, args.rounds):.0f} ns"],
            ["`observed` timer around a call", f"{per_call_ns(timed, args.calls, args.rounds):.0f} ns"],
            ["`count_suggest_answer` (what suggest adds)",
             f"{per_call_ns(lambda: metrics.count_suggest_answer('local'), args.calls, args.rounds):.0f} ns"],
        ]

        client = Client()
        url = "/api/suggestions/suggest/?q=printer%20mo"
        # Warm the answer memo and the cache version.
        for _ in range(50):
            assert client.get(url).status_code == 200

        def round_us(enabled: bool) -> float:
            with override_settings(SUGGESTIONS_METRICS=enabled):
                start = time.perf_counter()
                for _ in range(args.requests):
                    client.get(url)
                return (time.perf_counter() - start) / args.requests * 1e6

        on, off = [], []
        for _ in range(args.rounds):
            off.append(round_us(False))
            on.append(round_us(True))
        med_on, med_off = statistics.median(on), statistics.median(off)
        rows += [
            ["warm `GET suggest/`, metrics off (median µs/request)", f"{med_off:.1f} µs"],
            ["warm `GET suggest/`, metrics on (median µs/request)", f"{med_on:.1f} µs"],
            ["difference (on − off)", f"{med_on - med_off:+.1f} µs ({(med_on / med_off - 1) * 100:+.1f}%)"],
        ]
        print(markdown_table(["measured", "median"], rows))
        print(f"\nload average: {os.getloadavg()[0]:.2f}; command: {command_line('bench.observability', argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
