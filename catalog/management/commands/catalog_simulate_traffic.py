"""``manage.py catalog_simulate_traffic``: simulated shoppers against a running demo shop.

A thin wrapper around :mod:`catalog.simulator`: reads the judgments (the
shipped Chorus ``dev.csv`` unless ``--judgments`` names another file), maps
their Icecat ids to product ids through ``Product.source_id`` in this
project's database, and runs the shoppers against ``--base-url`` over HTTP.

Contracts:
* Run it with the same settings (``SHOP_VAR_DIR``, ``DATABASE_URL``) as the
  server: the id mapping is read from this process's database, the events
  are written by the server into its own.
* Only loopback base URLs are accepted; a refused one, or no server
  answering, is a ``CommandError`` before any traffic is sent.
* Ends by itself (every planned search done, ``--duration`` or
  ``--max-requests`` reached) and prints a summary; non-2xx answers are
  counted there, never raised.
* All shoppers share the loopback address, so the server's per-address
  throttles see one client: about 5 ``POST events/`` per shopper means the
  demo's default ``THROTTLE_EVENTS=600/min`` is reached by ~120 shoppers a
  minute. Throttled answers are counted (their events are lost, as a
  browser's would be), never retried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from catalog.models import Product
from catalog.simulator import (
    DEFAULT_API_PREFIX,
    DEFAULT_JUDGMENTS_PATH,
    ClickModel,
    HttpTransport,
    NotLoopbackError,
    ServerUnreachable,
    Simulation,
    SimulationConfig,
    SuggestionModel,
    judgments_by_product,
    load_judgments,
)


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Simulate shoppers typing, choosing suggestions, searching and clicking results "
        "on a running demo shop (loopback only)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="The running shop (loopback only; default http://127.0.0.1:8000).")
        parser.add_argument("--api-prefix", default=DEFAULT_API_PREFIX, help=f"Where the suggestions API is mounted (default {DEFAULT_API_PREFIX}).")
        parser.add_argument("--shoppers", type=int, default=100, help="Number of shoppers, each with its own session (default 100).")
        parser.add_argument("--searches-per-shopper", type=float, default=3.0, help="Average searches per shopper, at least 1 (default 3).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of everything random (default 0).")
        parser.add_argument("--position-bias", type=float, default=1.0, help="η: position p is examined with probability 1/(1+p)^η, for results and suggestions (default 1).")
        parser.add_argument("--zipf-exponent", type=float, default=1.0, help="Skew of query popularity (default 1; 0: uniform).")
        parser.add_argument("--concurrency", type=int, default=4, help="Shoppers at once, one thread each (default 4).")
        parser.add_argument("--duration", type=_positive_float, default=None, help="Stop after this many seconds.")
        parser.add_argument("--max-requests", type=int, default=None, help="Stop after this many requests.")
        parser.add_argument("--judgments", type=Path, default=DEFAULT_JUDGMENTS_PATH, help="query,docid,rating CSV (default: the shipped Chorus judgments).")
        parser.add_argument("--timeout", type=_positive_float, default=10.0, help="Seconds to wait for one answer (default 10).")
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["shoppers"] < 0:
            raise CommandError("--shoppers must not be negative.")
        if options["max_requests"] is not None and options["max_requests"] < 1:
            raise CommandError("--max-requests must be at least 1.")
        try:
            transport = HttpTransport(options["base_url"], api_prefix=options["api_prefix"], timeout=options["timeout"])
            eta = options["position_bias"]
            config = SimulationConfig(
                shoppers=options["shoppers"],
                searches_per_shopper=options["searches_per_shopper"],
                seed=options["seed"],
                zipf_exponent=options["zipf_exponent"],
                concurrency=options["concurrency"],
                duration=options["duration"],
                max_requests=options["max_requests"],
                api_prefix=options["api_prefix"],
                click_model=ClickModel(position_bias=eta),
                suggestion_model=SuggestionModel(position_bias=eta),
            )
            judged = load_judgments(options["judgments"])
        except NotLoopbackError as exc:
            raise CommandError(str(exc)) from exc
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

        docids = {doc for grades in judged.values() for doc in grades}
        product_ids = {
            source_id: str(pk)
            for source_id, pk in Product.objects.filter(source_id__in=docids).values_list("source_id", "pk")
        }
        if not product_ids:
            self.stderr.write(self.style.WARNING(
                "None of the judged products is in this database (run catalog_load_icecat, and this "
                "command with the server's settings): every result is clicked as an unjudged one."
            ))
        simulation = Simulation(config, judgments_by_product(judged, product_ids), transport)

        try:
            transport.check()
        except ServerUnreachable as exc:
            raise CommandError(str(exc)) from exc

        if not options["quiet"]:
            self.stdout.write(
                f"{config.shoppers} shoppers, {simulation.planned_searches} planned searches over "
                f"{len(simulation.judgments)} queries ({len(product_ids)}/{len(docids)} judged products "
                f"in the catalog) against {transport.base_url}"
            )
        # tqdm needs the raw stream: Django's OutputWrapper appends a newline to every write.
        stream = getattr(self.stderr, "_out", self.stderr)
        bar = tqdm(
            total=simulation.planned_searches,
            unit="search",
            desc="Shopping",
            file=stream,
            disable=True if options["quiet"] else None,
        )
        try:
            stats = simulation.run(on_search=lambda: bar.update(1))
        finally:
            bar.close()

        for line in stats.summary_lines():
            self.stdout.write(line)
        throttled = stats.http_errors.get(429, 0)
        if throttled:
            self.stdout.write(self.style.WARNING(
                f"{throttled} answers were throttled (HTTP 429) and their events lost: every simulated "
                "shopper comes from the same loopback address, so the server's per-address rates count "
                "them as one client. Start the server with higher THROTTLE_SUGGEST / THROTTLE_SEARCH / "
                "THROTTLE_EVENTS (e.g. THROTTLE_EVENTS=100000/min) for simulations, or run fewer shoppers "
                "per minute."
            ))
        if stats.http_errors.get("connection", 0):
            self.stdout.write(self.style.WARNING(
                f"{stats.http_errors['connection']} requests got no answer: did the server at {transport.base_url} stop?"
            ))
        if options["quiet"]:
            self.stdout.write(self.style.SUCCESS("Done."))
        else:
            self.stdout.write(self.style.SUCCESS("Done. Run `manage.py suggestions_build` to mine the new history."))
