"""``python -m bench.retrain``: how long the nightly retrain of each model kind takes on a log of N events.

What is measured: the wall time of one run of the learning loop
(:func:`suggestions.services.retrain`, exactly what the beat task
``suggestions.ml.retrain`` calls) per kind, split into its phases, on a
fresh shop whose history holds ``--events`` events; beside it, the same
kinds on a ``--baseline-events`` log (default 10,000) in the same run: there
is no older retrain to compare with, so the baseline is how the time scales
with the log.

How:

1. **The log** (:func:`plan_log`, pure and seeded): the Best Buy search log's
   clicks on named skus (:func:`bench.search_clicks.read_log`) grouped into
   searches (one shopper, query and query time; its clicks). Each search
   becomes the events the product records for it: 1 to 3 suggestion lists
   shown while the query was typed (the most searched log queries completing
   each prefix, as Most-Popular-Completion serves them), a suggestion click
   when the typed query was in the last list (a third of those), the search
   (origin ``suggestion`` after such a click, else ``typed``) and its product
   clicks. Searches are drawn in a seeded order over the whole log (so a
   smaller log spans the same months, thinner); past the log's end the draw
   goes round again with the shoppers renamed (a bigger shop). The events are
   cut at exactly ``--events``.
2. **The shop** (:func:`build_shop`): a fresh database (SQLite in a temporary
   folder, or ``--database-url``) with the 437 named skus as the catalog
   (:func:`bench.qac.load_catalog`), indexed and with its gazetteer; searches
   imported with :func:`suggestions.services.import_search_history`; list
   impressions and suggestion clicks stored as rows; product clicks with the
   clicked product's rank in the shop's search (as ``bench.search_clicks``
   simulates positions); then the nightly build
   (:func:`suggestions.services.build_suggestions`), as beat runs it first.
3. **The retrains**, in the beat schedule's order (suggestion ranker,
   understanding, search ranker, generator): each timed from the loop's own
   progress lines (time-stamped as they arrive): *snapshot* (until the
   ``snapshot:`` line), *train* (until ``evaluating …``), *evaluate* (until
   the gate's decision), *promote* (until ``promoted …`` / ``kept …``:
   changed examples, checksum, register) and *activate* (after that line:
   what promotion's receivers run at commit; here Celery is eager, so they run
   in the retrain; a shop's workers run them as separate tasks). Printed with
   the process's CPU seconds over the retrain (all threads), the training-set
   size, the outcome with its gate metrics, and the load average at the start
   and end of each.

Each log size runs in its own Python process with its own database (a fresh
worker per size; the first kind pays the imports).

Model sizes: by default every kind runs in the configuration the beat task
runs at night: the rankers with their defaults, the understanding model on
``SUGGESTIONS_UNDERSTANDING_BASE`` (MiniLM + multilingual-e5-small, 4 epochs)
and the generator on SmolLM2-135M-Instruct with LoRA (200 steps). Their base
models are converted once per machine before any retrain is timed (set-up,
as ``manage.py suggestions_prepare_encoders`` / ``suggestions_prepare_generator``
do). Where that is too slow for a machine, ``--understanding tiny`` /
``--generator tiny`` time the kinds' config-built small models instead, and
``--understanding-epochs`` / ``--generator-steps`` change the training length;
the report names the configuration each kind was timed in.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import (
    REPO_ROOT,
    add_common_arguments,
    command_line,
    fail,
    markdown_table,
    require_file,
    resolve_data_dir,
)

#: The beat schedule's order of the nightly retrains (shop_search/settings.py).
KIND_ORDER = ("suggestion_ranker", "understanding", "search_ranker", "generator")
#: Longest list shown in the typeahead.
LIST_SIZE = 8
#: Share of searches whose query was in the last list shown that were chosen from it.
CHOSEN_SHARE = 0.34

EVENT_TYPES = ("impression", "suggestion_click", "search", "product_click")


# -- the log ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedEvent:
    """One event of the bench log, before it is stored.

    Attributes:
        type: One of :data:`EVENT_TYPES`.
        user: Shopper id as in the source log (renamed on later rounds).
        query: The search's raw query (as typed).
        normalized: Its normalised form.
        time: When the event happened.
        search_key: Identifies the search the event belongs to.
        prefix: What was typed (impressions, suggestion clicks).
        suggestions: The list shown (impressions).
        position: 0-based position (suggestion click: in the list; product click: in the results, set on storing).
        sku: The clicked product (product clicks).
    """

    type: str
    user: str
    query: str
    normalized: str
    time: datetime
    search_key: str
    prefix: str = ""
    suggestions: tuple[str, ...] = ()
    position: int = 0
    sku: str = ""


@dataclass
class _LoggedSearch:
    user: str
    query: str
    normalized: str
    time: datetime
    clicks: list = field(default_factory=list)  # (sku, click time)


def group_searches(clicks: Iterable) -> list[_LoggedSearch]:
    """The log's clicks (``LoggedClick``) grouped into searches: one shopper, raw query and query time."""
    found: dict[tuple[str, str, datetime], _LoggedSearch] = {}
    for c in clicks:
        key = (c.user, c.raw_query.strip(), c.query_time)
        if key not in found:
            found[key] = _LoggedSearch(c.user, c.raw_query.strip(), c.query, c.query_time)
        found[key].clicks.append((c.sku, c.click_time))
    return sorted(found.values(), key=lambda s: (s.time, s.user, s.query))


def _completions(searches: Sequence[_LoggedSearch]) -> Callable[[str], tuple[str, ...]]:
    """Most-Popular-Completion over the log's queries: the most searched ones starting with a prefix."""
    counts = Counter(s.normalized for s in searches)
    ordered = sorted(counts, key=lambda q: (-counts[q], q))
    by_first: dict[str, list[str]] = defaultdict(list)
    for q in ordered:
        by_first[q[:1]].append(q)
    cache: dict[str, tuple[str, ...]] = {}

    def complete(prefix: str) -> tuple[str, ...]:
        if prefix not in cache:
            cache[prefix] = tuple([q for q in by_first.get(prefix[:1], ()) if q.startswith(prefix)][:LIST_SIZE])
        return cache[prefix]

    return complete


def _session(search: _LoggedSearch, user: str, key: str, rng: random.Random,
             complete: Callable[[str], tuple[str, ...]]) -> list[PlannedEvent]:
    q = search.normalized
    lengths = sorted(rng.sample(range(1, min(len(q), 6) + 1), k=min(rng.randint(1, 3), min(len(q), 6))))
    typed_at = search.time - timedelta(seconds=2 * len(lengths))
    out: list[PlannedEvent] = []
    shown: tuple[str, ...] = ()
    for n, length in enumerate(lengths):
        shown = complete(q[:length])
        out.append(PlannedEvent("impression", user, search.query, q, typed_at + timedelta(seconds=2 * n), key,
                                prefix=q[:length], suggestions=shown))
    chosen = q in shown and rng.random() < CHOSEN_SHARE
    if chosen:
        out.append(PlannedEvent("suggestion_click", user, search.query, q, search.time - timedelta(seconds=1), key,
                                prefix=q[:lengths[-1]], position=shown.index(q)))
    out.append(PlannedEvent("search", user, search.query, q, search.time, key,
                            prefix="suggestion" if chosen else "typed"))
    for sku, when in search.clicks:
        out.append(PlannedEvent("product_click", user, search.query, q, when, key, sku=sku))
    return out


def plan_log(clicks: Iterable, events: int, *, seed: int = 7) -> list[PlannedEvent]:
    """Exactly ``events`` events (see the module docstring), oldest search first.

    Args:
        clicks: The source log's clicks (:class:`bench.search_clicks.LoggedClick`).
        events: How many events the log holds (at least 1).
        seed: Seed of the draw and of the typing.

    Raises:
        ValueError: ``events`` below 1, or a log with no search.
    """
    if events < 1:
        raise ValueError("events must be at least 1")
    searches = group_searches(clicks)
    if not searches:
        raise ValueError("the source log holds no search with a click")
    rng = random.Random(seed)
    complete = _completions(searches)
    sessions: list[tuple[datetime, list[PlannedEvent]]] = []
    total, round_no = 0, 0
    while total < events:
        order = list(range(len(searches)))
        rng.shuffle(order)
        for i in order:
            s = searches[i]
            user = s.user if round_no == 0 else f"{s.user}~{round_no}"
            key = f"{user}\x1f{s.query}\x1f{s.time.isoformat()}"
            planned = _session(s, user, key, rng, complete)
            sessions.append((s.time, planned))
            total += len(planned)
            if total >= events:
                break
        round_no += 1
    sessions.sort(key=lambda item: (item[0], item[1][0].user))
    flat = [e for _t, planned in sessions for e in planned]
    # Cut at exactly `events`: the newest search loses its last events.
    flat = flat[:events]
    return flat


def event_counts(planned: Iterable[PlannedEvent]) -> dict[str, int]:
    """How many planned events of each type (every type present, 0 when none)."""
    counts = Counter(e.type for e in planned)
    return {t: counts.get(t, 0) for t in EVENT_TYPES}


# -- the shop ---------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    from django.utils import timezone

    return value if timezone.is_aware(value) else timezone.make_aware(value)


def build_shop(planned: Sequence[PlannedEvent], sku_file: Path, *, log: Callable[[str], None]) -> dict[str, float]:
    """Catalog, index, the planned events as the product stores them, and the nightly build.

    Returns:
        Seconds of each set-up step.
    """
    from django.contrib.contenttypes.models import ContentType

    from bench.qac import load_catalog
    from catalog.models import Product
    from suggestions import search_ranking, services
    from suggestions.conf import app_settings
    from suggestions.history import IMPORT_NAMESPACE
    from suggestions.models import (
        ProductClick,
        SearchEvent,
        SearchOrigin,
        SuggestionClick,
        SuggestionImpression,
    )
    from suggestions.nlp.gazetteer import build_gazetteer
    from suggestions.text import hash_identifier

    took: dict[str, float] = {}
    started = time.perf_counter()
    load_catalog(sku_file)
    services.rebuild_index()
    build_gazetteer(save=True)
    took["catalog and index"] = time.perf_counter() - started
    log(f"catalog: {Product.objects.count()} products indexed")

    started = time.perf_counter()
    searches = [e for e in planned if e.type == "search"]
    report = services.import_search_history(services.ImportedSearch(e.user, e.query, e.time) for e in searches)
    if report.imported != len(searches):
        raise RuntimeError(f"imported {report.imported} of {len(searches)} searches ({report.duplicates} duplicates)")

    def search_id(e: PlannedEvent) -> uuid.UUID:  # the importer's request id of the search
        return uuid.uuid5(IMPORT_NAMESPACE, f"{e.user}\x1f{e.query}\x1f{_aware(e.time).isoformat()}")

    chosen = [search_id(e) for e in searches if e.prefix == "suggestion"]
    for first in range(0, len(chosen), 500):
        SearchEvent.objects.filter(request_id__in=chosen[first:first + 500]).update(origin=SearchOrigin.SUGGESTION)
    salt = app_settings.HASH_SALT
    actor = {u: hash_identifier(f"import:{u}", salt) for u in {e.user for e in planned}}

    def suggest_id(e: PlannedEvent) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"suggest|{e.search_key}")

    SuggestionImpression.objects.bulk_create(
        [SuggestionImpression(created_at=_aware(e.time), request_id=suggest_id(e), prefix=e.prefix,
                              suggestions=list(e.suggestions), actor_hash=actor[e.user])
         for e in planned if e.type == "impression"], batch_size=2000)
    SuggestionClick.objects.bulk_create(
        [SuggestionClick(created_at=_aware(e.time), request_id=suggest_id(e), prefix=e.prefix,
                         suggestion=e.normalized, position=e.position, actor_hash=actor[e.user])
         for e in planned if e.type == "suggestion_click"], batch_size=2000)
    took["searches and suggestion events"] = time.perf_counter() - started

    started = time.perf_counter()
    pk_of = {src.removeprefix("bestbuy-"): str(pk) for pk, src in Product.objects.values_list("pk", "source_id")}
    clicks = [e for e in planned if e.type == "product_click"]
    shown: dict[str, list[str]] = {}
    for q in sorted({e.normalized for e in clicks}):
        _ctx, cands = search_ranking.recall(q)
        shown[q] = [c.id for c in cands]
    ct = ContentType.objects.get_for_model(Product)
    rows = []
    for e in clicks:
        pk = pk_of[e.sku]
        ranked = shown[e.normalized]
        rows.append(ProductClick(created_at=_aware(e.time), request_id=search_id(e), query=e.normalized,
                                 content_type=ct, object_id=pk,
                                 position=ranked.index(pk) if pk in ranked else len(ranked), actor_hash=actor[e.user]))
    ProductClick.objects.bulk_create(rows, batch_size=2000)
    took["product clicks (positions from the shop's search)"] = time.perf_counter() - started

    started = time.perf_counter()
    built = services.build_suggestions(include_catalog=True)
    took["nightly build"] = time.perf_counter() - started
    log(f"build: {built}")
    stored = {"search": SearchEvent.objects.count(), "impression": SuggestionImpression.objects.count(),
              "suggestion_click": SuggestionClick.objects.count(), "product_click": ProductClick.objects.count()}
    if stored != event_counts(planned):
        raise RuntimeError(f"stored {stored}, planned {event_counts(planned)}")
    return took


# -- one retrain, timed -------------------------------------------------------------------------


def kind_options(kind: str, args: argparse.Namespace) -> dict:
    """The retrain options of ``kind`` for the configuration asked (``{}``: the nightly defaults)."""
    if kind == "understanding":
        opts: dict = {"tiny": True} if args.understanding == "tiny" else {}
        params = {}
        if args.understanding_epochs:
            params["epochs"] = args.understanding_epochs
        if args.device != "auto":
            params["device"] = args.device
        if params:
            opts["params"] = params
        return opts
    if kind == "generator":
        opts = {"tiny": True} if args.generator == "tiny" else {}
        if args.generator_steps:
            opts["steps"] = args.generator_steps
        return opts
    return {}


def configuration(kind: str, args: argparse.Namespace) -> str:
    """The model configuration timed, in words."""
    if kind == "understanding":
        what = ("tiny config-built encoder (option tiny)" if args.understanding == "tiny"
                else "nightly default (SUGGESTIONS_UNDERSTANDING_BASE)")
        return what + (f", {args.understanding_epochs} epochs" if args.understanding_epochs else ", default epochs")
    if kind == "generator":
        what = ("tiny config-built GPT-2 (option tiny, 300 steps)" if args.generator == "tiny"
                else "nightly default (SmolLM2-135M LoRA, 200 steps)")
        return what + (f", {args.generator_steps} steps" if args.generator_steps else "")
    return "nightly default (LightGBM lambdarank)"


def phases_from_log(lines: Sequence[tuple[float, str]], start: float, end: float) -> dict[str, float]:
    """Snapshot / train / evaluate / promote / activate seconds from the loop's time-stamped lines."""
    marks: dict[str, float | None] = {"snapshot": None, "train": None, "evaluate": None, "promote": None}
    for stamp, line in lines:
        if marks["snapshot"] is None:
            if line.startswith("snapshot:"):
                marks["snapshot"] = stamp
        elif marks["train"] is None:
            if line.startswith("evaluating the challenger"):
                marks["train"] = stamp
        elif marks["evaluate"] is None:
            # The gate's decision: the first line after "evaluating …" that is not a note.
            if not line.startswith("the active version"):
                marks["evaluate"] = stamp
        elif marks["promote"] is None and line.startswith(("promoted ", "kept the active")):
            marks["promote"] = stamp
    out, last = {}, start
    for name in ("snapshot", "train", "evaluate", "promote"):
        if marks[name] is None:
            break
        out[name] = marks[name] - last
        last = marks[name]
    out["activate" if marks["promote"] is not None else "rest"] = end - last
    return out


def time_retrain(kind: str, options: dict) -> dict:
    """One :func:`suggestions.services.retrain` of ``kind``, timed; returns what the report prints."""
    from suggestions import services

    lines: list[tuple[float, str]] = []

    def collect(line: str) -> None:
        lines.append((time.perf_counter(), line))
        print(f"  [{kind}] {line}", file=sys.stderr, flush=True)

    load_start = os.getloadavg()[0]
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    result: dict = {"kind": kind, "load_start": load_start}
    try:
        report = services.retrain(kind, options=options, log=collect)
    except Exception as exc:  # noqa: BLE001 - reported as the kind's outcome
        end = time.perf_counter()
        result.update(seconds=end - start, cpu_seconds=cpu_seconds() - cpu_start, outcome=f"failed: {type(exc).__name__}: {exc}", phases={}, size="",
                      load_end=os.getloadavg()[0])
        return result
    end = time.perf_counter()
    version, gate = report.version, report.gate
    metrics = version.metrics if version else {}
    result.update(
        seconds=end - start, cpu_seconds=cpu_seconds() - cpu_start, phases=phases_from_log(lines, start, end), load_end=os.getloadavg()[0],
        snapshot=metrics.get("snapshot", {}), train=metrics.get("train", {}),
        outcome=("promoted" if report.promoted else "rejected"),
        metric=services.KINDS[kind].metric,
        challenger=gate.challenger if gate else None, incumbent=gate.incumbent if gate else None,
        ci=(gate.ci_low, gate.ci_high) if gate and gate.ci_low is not None else None,
        heldout_units=gate.n if gate else 0, decision=gate.reason if gate else "")
    result["size"] = training_size(kind, result["snapshot"], result["train"])
    return result


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads (torch's, LightGBM's) included.

    Beside the wall time it tells the work from the wait: on a shared machine the wall time
    grows with the other jobs' load, the CPU time much less."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def training_size(kind: str, snapshot: dict, train: dict) -> str:
    """The training-set size of a kind's run, in its own units."""
    if kind == "suggestion_ranker":
        return (f"{snapshot.get('train_searches', 0):,} searches → {train.get('groups', 0):,} groups, "
                f"{train.get('rows', 0):,} candidates")
    if kind == "search_ranker":
        keys = [k for k in snapshot if k.startswith("train")]
        part = ", ".join(f"{snapshot[k]:,} {k.removeprefix('train_').replace('_', ' ')}" for k in keys
                         if isinstance(snapshot[k], int))
        return f"{part} → {train.get('groups', 0):,} groups, {train.get('rows', 0):,} rows"
    if kind == "understanding":
        return f"{snapshot.get('train', 0):,} examples ({snapshot.get('heldout', 0):,} held out)"
    if kind == "generator":
        return f"{train.get('pairs', 0):,} pairs ({snapshot.get('train_searches', 0):,} searches)"
    return json.dumps(snapshot, default=str)


# -- one log size (a child process) -------------------------------------------------------------


def run_size(args: argparse.Namespace, events: int) -> dict:
    """Build the shop with ``events`` events and time each kind's retrain (in this process)."""
    from bench.common import django_environment

    data_dir = resolve_data_dir(args.data_dir)
    log_file = require_file(data_dir / "bestbuy" / "train.csv", "The Best Buy search log")
    sku_file = require_file(data_dir / "bestbuy" / "sku_name.tsv", "The Best Buy product names")
    settings_module = "bench.settings"
    if args.database_url:
        from bench.analytics import ensure_database

        ensure_database(args.database_url)
        os.environ["BENCH_DATABASE_URL"] = args.database_url
        settings_module = "bench.analytics.settings"
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""

    def say(line: str) -> None:
        print(f"[{events:,} events] {line}", file=sys.stderr, flush=True)

    out: dict = {"events": events}
    try:
        with django_environment(keep=args.keep_tmp, settings_module=settings_module):
            from django.db import connection

            from bench.search_clicks import read_log, read_names

            if args.database_url:
                from suggestions.models import (
                    ProductClick,
                    SearchEvent,
                    SuggestionClick,
                    SuggestionImpression,
                )

                for model in (SearchEvent, SuggestionImpression, SuggestionClick, ProductClick):
                    model.objects.all().delete()
            out["database"] = connection.vendor
            started = time.perf_counter()
            planned = plan_log(read_log(log_file, read_names(sku_file)), events, seed=args.seed)
            out["counts"] = event_counts(planned)
            out["span"] = (min(e.time for e in planned).isoformat(), max(e.time for e in planned).isoformat())
            out["shoppers"] = len({e.user for e in planned})
            out["setup"] = {"plan the log": time.perf_counter() - started}
            say(f"planned {out['counts']}")
            out["setup"].update(build_shop(planned, sku_file, log=say))
            started = time.perf_counter()
            prepare_bases(args)
            out["setup"]["base models ready (converted once per machine)"] = time.perf_counter() - started
            out["device"] = device_in_use(args.device)
            out["kinds"] = []
            for kind in args.kinds:
                say(f"retrain {kind} …")
                out["kinds"].append(time_retrain(kind, kind_options(kind, args)))
                say(f"{kind}: {out['kinds'][-1]['seconds']:.1f} s, {out['kinds'][-1]['outcome']}")
    finally:
        if args.database_url:
            from bench.analytics import drop_database

            drop_database(args.database_url)
    return out


def prepare_bases(args: argparse.Namespace) -> None:
    """Convert the nightly base models when not cached yet (a shop does it once, at set-up:
    ``manage.py suggestions_prepare_encoders`` / ``suggestions_prepare_generator``), so that no
    retrain timed here pays for it."""
    if "understanding" in args.kinds and args.understanding == "nightly":
        from suggestions.learning import choose_base
        from suggestions.ml.encoders import resolve_encoder

        for spec in choose_base(None).split(","):
            if spec.strip():
                resolve_encoder(spec.strip())
    if "generator" in args.kinds and args.generator == "nightly":
        from suggestions.ml.generator.base import resolve_base

        resolve_base()


def device_in_use(asked: str) -> str:
    """Where torch trains in this process (``cpu`` when torch is missing or no GPU is visible)."""
    try:
        import torch
    except ImportError:
        return "cpu (no torch)"
    if asked == "cuda" and not torch.cuda.is_available():
        raise fail("--device cuda: no CUDA device is visible to torch.")
    if asked != "cpu" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


# -- the command ---------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _non_negative(text: str) -> int:
    if text.strip() == "0":
        return 0
    return _positive(text)


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KIND_ORDER]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown kind(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(KIND_ORDER)}")
    return [k for k in KIND_ORDER if k in kinds]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m bench.retrain``."""
    parser = argparse.ArgumentParser(prog="python -m bench.retrain", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--events", type=_positive, default=100_000, help="Events in the log (default 100,000).")
    parser.add_argument("--baseline-events", type=_non_negative, default=10_000,
                        help="Events of the scaling baseline's log, timed in the same run (default 10,000; 0: none).")
    parser.add_argument("--kinds", type=_kinds, default=list(KIND_ORDER),
                        help=f"Comma-separated kinds to time (default: all, in the beat order: {','.join(KIND_ORDER)}).")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="Where torch trains the understanding model and the generator (default cpu; "
                        "auto: a GPU when torch sees one). The rankers are LightGBM on the CPU.")
    parser.add_argument("--understanding", choices=["nightly", "tiny"], default="nightly",
                        help="Understanding model timed: the nightly default base (SUGGESTIONS_UNDERSTANDING_BASE, "
                        "default) or the kind's tiny config-built model.")
    parser.add_argument("--understanding-epochs", type=_positive, default=None,
                        help="Epochs of the understanding retrain (default: the kind's).")
    parser.add_argument("--generator", choices=["nightly", "tiny"], default="nightly",
                        help="Generator timed: the nightly base (SUGGESTIONS_GENERATOR_BASE: SmolLM2-135M LoRA, "
                        "default) or the kind's tiny config-built GPT-2.")
    parser.add_argument("--generator-steps", type=_positive, default=None,
                        help="Training steps of the generator retrain (default: the kind's).")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the log's draw (default 7).")
    parser.add_argument("--database-url", default=None,
                        help="A local PostgreSQL database URL to run on instead of a throwaway SQLite file "
                        "(created if missing, dropped afterwards).")
    parser.add_argument("--child-json", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def _fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _outcome(r: dict) -> str:
    if r["outcome"].startswith("failed"):
        return r["outcome"]
    ours = f"{r['metric']} {r['challenger']:.4f}"
    theirs = f" vs {r['incumbent']:.4f}" if r.get("incumbent") is not None else " (no baseline)"
    ci = f", CI {r['ci'][0]:+.4f}…{r['ci'][1]:+.4f}" if r.get("ci") else ""
    return f"{r['outcome']}: {ours}{theirs}{ci}, {r['heldout_units']:,} held-out units"


def report(args: argparse.Namespace, argv, results: list[dict], load: tuple, wall: float) -> str:
    lines = ["# Retraining time of each kind (the nightly retrain through the learning loop)", "",
             f"command: {command_line('bench.retrain', argv)}",
             f"machine: {os.cpu_count()} CPUs; load average at start {load[0][0]:.2f} / {load[0][1]:.2f} / "
             f"{load[0][2]:.2f}, at end {load[1][0]:.2f} / {load[1][1]:.2f} / {load[1][2]:.2f} (1/5/15 min)"]
    for kind in args.kinds:
        lines.append(f"{kind}: {configuration(kind, args)}")
    for res in results:
        c = res["counts"]
        lines += ["", f"## {res['events']:,} events", "",
                  f"log: {c['search']:,} searches, {c['impression']:,} suggestion lists, {c['suggestion_click']:,} "
                  f"suggestion clicks, {c['product_click']:,} product clicks; {res['shoppers']:,} shoppers; "
                  f"{res['span'][0][:10]} to {res['span'][1][:10]}; database {res['database']}; torch on "
                  f"{res['device']}",
                  "set-up (not timed as retrain): " + ", ".join(f"{k} {v:.1f} s" for k, v in res["setup"].items()),
                  ""]
        rows = []
        for r in res["kinds"]:
            p = r["phases"]
            rows.append([r["kind"], _fmt_s(r["seconds"]), _fmt_s(r.get("cpu_seconds")), _fmt_s(p.get("snapshot")), _fmt_s(p.get("train")),
                         _fmt_s(p.get("evaluate")), _fmt_s(p.get("promote")),
                         _fmt_s(p.get("activate", p.get("rest"))), r["size"], _outcome(r),
                         f"{r['load_start']:.2f} → {r['load_end']:.2f}"])
        lines.append(markdown_table(["kind", "total s", "CPU s", "snapshot s", "train s", "evaluate s", "promote s",
                                     "activate s", "training set", "outcome", "load (1 min)"], rows))
    if len(results) == 2:
        small, big = results
        lines += ["", f"## Scaling: {big['events']:,} against {small['events']:,} events "
                  f"(×{big['events'] / small['events']:.1f} events)", ""]
        rows = []
        for a, b in zip(small["kinds"], big["kinds"], strict=True):
            ratio = b["seconds"] / a["seconds"] if a["seconds"] else float("nan")
            rows.append([a["kind"], _fmt_s(a["seconds"]), _fmt_s(b["seconds"]), f"×{ratio:.2f}"])
        lines.append(markdown_table(["kind", f"{small['events']:,} events s", f"{big['events']:,} events s",
                                     "ratio"], rows))
    lines += ["", f"wall time: {wall:.1f} s (each log size in its own process and database)"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the retrains of each log size (each in a child process) and print the report."""
    parser = build_parser()
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.child_json is not None:
        result = run_size(args, args.events)
        args.child_json.write_text(json.dumps(result, default=str))
        return 0
    data_dir = resolve_data_dir(args.data_dir)
    require_file(data_dir / "bestbuy" / "train.csv", "The Best Buy search log")
    require_file(data_dir / "bestbuy" / "sku_name.tsv", "The Best Buy product names")
    sizes = ([args.baseline_events] if args.baseline_events and args.baseline_events != args.events else [])
    sizes.append(args.events)
    started = time.perf_counter()
    load_start = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        for events in sizes:
            out = Path(tmp) / f"{events}.json"
            child = [arg for arg in argv if not arg.startswith("--child-json")]
            cmd = [sys.executable, "-m", "bench.retrain", *child, "--events", str(events), "--child-json", str(out)]
            done = subprocess.run(cmd, cwd=REPO_ROOT, check=False, stdout=sys.stderr)
            if done.returncode != 0 or not out.exists():
                raise fail(f"the {events:,}-event run failed (exit status {done.returncode}).", 1)
            results.append(json.loads(out.read_text()))
    print(report(args, argv, results, (load_start, os.getloadavg()), time.perf_counter() - started))
    return 1 if any(r["outcome"].startswith("failed") for res in results for r in res["kinds"]) else 0
