"""Generated refinements: training pairs, the ``generator`` model kind, what it
generates for, the gates, and storing what passes for review.

Django-side; importing it imports no torch (the model code in
:mod:`suggestions.ml.generator` is imported inside the functions that train or
generate, which only workers and commands call). Reached through
:mod:`suggestions.services`; the task is ``suggestions.ml.generate_refinements``.

Contracts:

* **Training pairs** (:func:`training_pairs`):

  ``history``
      A shopper's search followed within ``SUGGESTIONS_GENERATOR_SESSION_MINUTES``
      by a narrower one (:func:`~suggestions.ml.generator.pairs.is_refinement`;
      product types read by :func:`product_type_reader`),
      kept when at least ``SUGGESTIONS_MIN_DISTINCT_USERS`` distinct
      *identified* shoppers made it and both texts pass
      :func:`~suggestions.mining.history_text_allowed`. Weight: its shoppers.
      A search started from a refinement chip (``origin="refinement"``) is
      never a target, here nor in the held-out units: the shop offered it, so
      it would return the generator's own proposals to it as shoppers'
      evidence. It still seeds the searches the shopper typed after it.
  ``catalog``
      Product type → brand + type and attribute + type (the approved catalog
      phrases, each returning at least ``SUGGESTIONS_CATALOG_PHRASE_MIN_PRODUCTS``
      products), type → type + audience / size / colour value where at
      least 3 products of the type have it, and a type, brand + type, model
      family or k-gated query (one at least ``SUGGESTIONS_MIN_DISTINCT_USERS``
      identified shoppers searched, passing the privacy filter) found in a
      product title → it and the title's next words. Weight 1.
  ``approved``
      Generated refinements a merchandiser approved (weight
      ``SUGGESTIONS_GENERATOR_APPROVED_WEIGHT``). Rejected ones are never
      trained on, and never stored again (the near-duplicate gate sees them).
* **Constrained vocabulary** (:func:`vocabulary`): the words of approved
  catalog phrases and catalog pairs, and of queries that passed the k-gate.
  The generator writes nothing else.
* **Gates** (:func:`gate_candidates`), in order: not the seed, readable and
  nothing private, no blocked term, not a near-duplicate (same words in any
  order, plurals folded) of any existing suggestion whatever its status or of
  another candidate, keeps the seed's understood brands and product types,
  returns at least ``SUGGESTIONS_GENERATED_MIN_RESULTS`` products that hold
  every one of its words (among the recall backend's first 100 for it).
* Survivors are stored as ``Suggestion(source="generated", status="pending")``
  (``approved`` when ``SUGGESTIONS_GENERATED_AUTO_APPROVE`` and their score and
  result count reach its thresholds) with ``provenance``: ``seed_query``,
  ``seed_reason``, ``model_version``, ``results``, ``products`` (a few ids),
  ``score`` and ``pair_evidence``. Builds never touch generated rows.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .learning import ModelKind, Snapshot, Trained, newest_days_held_out, register_kind
from .mining import history_text_allowed, identified_shoppers
from .models import (
    ModelVersion,
    ModelVersionStatus,
    QueryDailyStat,
    SearchEvent,
    SearchOrigin,
    Suggestion,
    SuggestionSource,
    SuggestionStatus,
)
from .text import facet_key, normalize_query

logger = logging.getLogger(__name__)

KIND_GENERATOR = "generator"
#: Attribute names whose short values make "type + value" catalog pairs.
AUDIENCE_ATTRIBUTES = ("audience", "gender", "age_group", "size", "colour", "color")
#: Products of a type that must share a value for "type + value" to be a pair.
MIN_VALUE_PRODUCTS = 3
#: Weight of a generated suggestion: its score times this (below mined history).
GENERATED_WEIGHT_SCALE = 0.5
#: Products kept in the provenance for the review queue.
PREVIEW_PRODUCTS = 3
#: Results of a candidate's search that are checked for all its words.
MATCH_SCAN = 100


# -- training pairs ----------------------------------------------------------------------


def history_searches(since=None) -> list:
    """Every search with text, oldest first, as the generator reads them (an
    unidentified search keeps no actor, so it counts no shopper; a search
    started from a refinement chip is marked ``chosen``, so it is never
    mined as a shopper's own refinement)."""
    from .ml.generator.pairs import Search

    rows = SearchEvent.objects.exclude(normalized_query="")
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    rows = rows.order_by("created_at").values_list("normalized_query", "actor_hash", "identified", "created_at",
                                                   "origin")
    return [Search(q, a if known else "", t, chosen=origin == SearchOrigin.REFINEMENT)
            for q, a, known, t, origin in rows.iterator(chunk_size=5000)]


def history_pairs(searches: Iterable, *, min_users: int | None = None) -> list:
    """Refinement pairs of ``searches`` that pass the k-gate and the privacy filter."""
    from .ml.generator.pairs import gated_pairs, session_refinements

    k = app_settings.MIN_DISTINCT_USERS if min_users is None else min_users
    evidence = session_refinements(searches, gap_minutes=app_settings.GENERATOR_SESSION_MINUTES,
                                   product_type=product_type_reader())
    return gated_pairs(evidence, min_shoppers=k, allowed=history_text_allowed)


def product_type_reader() -> Callable[[str], str]:
    """The product type the rules understanding (the catalog's gazetteer) reads
    in a query, "" when none; memoised for one mining run."""
    from functools import lru_cache

    from .understanding import rules_understanding

    @lru_cache(maxsize=100_000)
    def read(query: str) -> str:
        try:
            found = rules_understanding(query).entities_of("product_type")
        except Exception:  # noqa: BLE001 - no gazetteer: only the word rule applies
            return ""
        return normalize_query(found[0].value or found[0].text) if found else ""
    return read


def _catalog_phrases() -> dict[str, str]:
    rows = Suggestion.objects.filter(source=SuggestionSource.CATALOG, status=SuggestionStatus.APPROVED)
    return {text: (prov or {}).get("rule", "") for text, prov in rows.values_list("text", "provenance")}


def catalog_pairs(documents: Iterable | None = None, *, seeds: Iterable[str] = ()) -> list:
    """Catalog pairs (see the module contract), from the approved catalog
    phrases and the documents' audience, size and colour attributes; ``seeds``
    (gated queries) are looked for in the titles beside the phrases."""
    from .ml.generator.pairs import Pair, catalog_phrase_pairs, title_pairs

    out: dict[tuple[str, str], Any] = {(p.seed, p.target): p for p in catalog_phrase_pairs(_catalog_phrases())}
    if documents is None and app_settings.ADAPTER:
        from .adapter import get_adapter

        documents = get_adapter().iter_documents(batch_size=app_settings.INDEX_BATCH_SIZE)
    values: Counter = Counter()
    titles: list[str] = []
    for doc in documents or ():
        titles.append(normalize_query(doc.title))
        ptype = normalize_query(doc.product_type)
        if not ptype:
            continue
        for name, value in (doc.attributes or {}).items():
            if not isinstance(value, str) or not any(a in str(name).lower() for a in AUDIENCE_ATTRIBUTES):
                continue
            value = normalize_query(value)
            if value and len(value) <= 20 and len(value.split()) <= 2 and value not in ptype.split():
                values[(ptype, value)] += 1
    for (ptype, value), n in values.items():
        target = f"{ptype} {value}"
        if n >= MIN_VALUE_PRODUCTS and history_text_allowed(target):
            out.setdefault((ptype, target), Pair(ptype, target, "catalog"))
    # A phrase in a product title → it and the title's next words ("hp laserjet" → "hp laserjet pro").
    phrases = {t for t, rule in _catalog_phrases().items() if rule in ("product_type", "model_family", "brand_type")}
    for pair in title_pairs(titles, phrases | set(seeds)):
        if history_text_allowed(pair.target):
            out.setdefault((pair.seed, pair.target), pair)
    return sorted(out.values(), key=lambda p: (p.seed, p.target))


def decisions() -> tuple[list, set[tuple[str, str]]]:
    """Merchandisers' decisions on generated refinements: approved pairs (to
    train on, weighted) and the rejected ``(seed, text)`` pairs."""
    from .ml.generator.pairs import Pair

    approved, rejected = [], set()
    rows = Suggestion.objects.filter(source=SuggestionSource.GENERATED).values_list("text", "status", "provenance")
    for text, status, prov in rows:
        seed = (prov or {}).get("seed_query")
        if not seed:
            continue
        if status == SuggestionStatus.APPROVED:
            approved.append(Pair(seed, text, "approved", weight=app_settings.GENERATOR_APPROVED_WEIGHT))
        elif status in (SuggestionStatus.REJECTED, SuggestionStatus.BLOCKED):
            rejected.add((seed, text))
    return approved, rejected


def training_pairs(searches: Iterable, documents: Iterable | None = None) -> dict[str, list]:
    """Every training pair by source; rejected pairs removed from all of them."""
    searches = list(searches)
    approved, rejected = decisions()
    out = {"history": history_pairs(searches), "catalog": catalog_pairs(documents, seeds=gated_queries(searches)),
           "approved": approved}
    return {name: [p for p in pairs if (p.seed, p.target) not in rejected] for name, pairs in out.items()}


def vocabulary(gated_queries: Iterable[str] = (), catalog: Iterable | None = None) -> set[str]:
    """The words the generator may write (see the module contract): those of
    the approved catalog phrases, of the ``catalog`` pairs (default:
    :func:`catalog_pairs`, which reads the documents) and of ``gated_queries``."""
    words: set[str] = set()
    for text in _catalog_phrases():
        words.update(text.split())
    for pair in catalog_pairs() if catalog is None else catalog:
        words.update(pair.target.split())
    words.update(w for q in gated_queries for w in q.split())
    return {w for w in words if w}


def gated_queries(searches: Iterable, *, min_users: int | None = None) -> set[str]:
    """Queries of ``searches`` made by at least k identified shoppers that pass the privacy filter."""
    k = app_settings.MIN_DISTINCT_USERS if min_users is None else min_users
    shoppers: dict[str, set[str]] = defaultdict(set)
    for s in searches:
        if s.actor:
            shoppers[s.query].add(s.actor)
    return {q for q, who in shoppers.items() if len(who) >= k and history_text_allowed(q)}


# -- the kind ----------------------------------------------------------------------------


class GeneratorKind(ModelKind):
    """Refinement generator (:mod:`suggestions.ml.generator`).

    * Snapshot: every search in history, the newest ``SUGGESTIONS_HELDOUT_DAYS``
      held out (the newest fifth when those days hold more than half); training
      pairs (:func:`training_pairs`) from the rest; held-out units: the
      refinement pairs shoppers made in the held-out days (one unit per
      distinct pair).
    * Metric: refinement Hit@10 of the served list for the seed: the mined
      (k-gated co-occurrence) refinements first, the model's constrained
      refinements after. The no-model baseline is the mined list alone.
    * Options: ``tiny`` (a config-built GPT-2 trained whole: tests, quick
      benchmarks), ``base`` (a folder; default ``SUGGESTIONS_GENERATOR_BASE``),
      ``steps``, ``batch_size``, ``lr``, ``rank``, ``max_heldout`` (a cap on
      held-out units), ``candidates`` (beam width, default 10).
    """

    name = KIND_GENERATOR
    metric = "refinement_hit@10"
    metric_label = _("how often the refinement shoppers then searched was among the ten offered (Hit@10)")
    description = _("Proposes narrower searches (“running shoes” → “running shoes men”) from how shoppers "
                    "refine their searches and what the catalog holds; merchandisers review them.")

    def snapshot(self, *, log: Callable[[str], None], options: Mapping[str, Any]) -> Snapshot:
        from .ml.generator.pairs import session_refinements

        searches = history_searches()
        if not searches:
            raise ValueError("no search history to learn refinements from yet")
        train, heldout = newest_days_held_out(searches, log=log, what="searches")
        pairs = training_pairs(train)
        units = sorted((seed, target) for (seed, target), ev in
                       session_refinements(heldout, gap_minutes=app_settings.GENERATOR_SESSION_MINUTES).items()
                       if ev.shoppers)
        if options.get("max_heldout") and len(units) > int(options["max_heldout"]):
            import random

            units = sorted(random.Random(0).sample(units, int(options["max_heldout"])))
        words = vocabulary(gated_queries(train), catalog=pairs["catalog"])
        counts = {f"{name}_pairs": len(p) for name, p in pairs.items()}
        counts.update({"train_searches": len(train), "heldout_searches": len(heldout), "heldout_pairs": len(units),
                       "vocabulary": len(words)})
        return Snapshot(train={"pairs": pairs, "words": words}, heldout=units,
                        window=(train[0].time if train else None, train[-1].time if train else None),
                        heldout_window=(heldout[0].time, heldout[-1].time), counts=counts, options=dict(options))

    def train(self, snapshot: Snapshot, folder: Path, *, log: Callable[[str], None]) -> Trained:
        from .ml.generator.model import GeneratorModel, TrainParams, build_tiny_base

        opts = snapshot.options
        pairs = [p for group in snapshot.train["pairs"].values() for p in group]
        if not pairs:
            raise ValueError("no training pairs: no gated refinements in history and no catalog phrases")
        tiny = bool(opts.get("tiny"))
        fields = {k: opts[k] for k in ("steps", "batch_size", "lr", "rank") if opts.get(k)}
        params = TrainParams(**{**({"lora": False, "lr": 3e-3, "steps": 300} if tiny else {}), **fields})
        if tiny:
            base = build_tiny_base([t for p in pairs for t in (p.seed, p.target)] + sorted(snapshot.train["words"]),
                                   folder / "tiny-base")
        else:
            from .ml.generator.base import resolve_base

            base = resolve_base(opts.get("base"))
        log(f"fine-tuning {'a tiny GPT-2' if tiny else base} on {len(pairs):,} pairs "
            f"({params.steps} steps{', LoRA' if params.lora else ''})")
        model = GeneratorModel.fit(base, pairs, folder, params, log=log)
        if tiny:
            shutil.rmtree(folder / "tiny-base", ignore_errors=True)
        return Trained(folder, {"pairs": len(pairs), "seconds": model.meta["train_seconds"],
                                "final_loss": model.meta["final_loss"]},
                       notes={"base": "tiny" if tiny else base, "params": params.as_dict(),
                              "pairs": {k: len(v) for k, v in snapshot.train["pairs"].items()}})

    def _baseline(self, snapshot: Snapshot):
        if "baseline" not in snapshot.cache:
            from .ml.generator.baseline import CooccurrenceBaseline

            snapshot.cache["baseline"] = CooccurrenceBaseline(snapshot.train["pairs"]["history"])
        return snapshot.cache["baseline"]

    def proposals(self, artefact: str | None, snapshot: Snapshot, seeds: list[str]) -> list[list[str]]:
        """The served list for each seed: mined refinements, then (with a model) generated ones."""
        from .ml.generator.metrics import merged

        baseline = self._baseline(snapshot)
        if artefact is None:
            return [baseline.propose(seed) for seed in seeds]
        from .ml.generator.model import GeneratorModel

        model = GeneratorModel.load(artefact)
        generated = model.generate(seeds, snapshot.train["words"], k=int(snapshot.options.get("candidates") or 10),
                                   batch_size=app_settings.GENERATOR_BATCH_SIZE)
        return [merged(baseline.propose(seed), [t for t, _s in gen]) for seed, gen in zip(seeds, generated, strict=True)]

    def changed_examples(self, snapshot: Snapshot, artefact: str, incumbent: str | None,
                         limit: int = 5) -> list[dict[str, Any]]:
        # Public seeds only: gated history seeds and catalog product types.
        pairs = snapshot.train["pairs"]
        seeds = list(dict.fromkeys([p.seed for p in pairs["history"]] + sorted({p.seed for p in pairs["catalog"]})))
        seeds = seeds[: limit * 3]
        if not seeds:
            return []
        before = self.proposals(incumbent, snapshot, seeds)
        after = self.proposals(artefact, snapshot, seeds)
        return [{"input": seed, "before": b[:3], "after": a[:3]}
                for seed, b, a in zip(seeds, before, after, strict=True) if b[:3] != a[:3]][:limit]

    def evaluation_units(self, artefact: str | None, snapshot: Snapshot):
        import numpy as np

        from .ml.generator.metrics import hit_units

        rows = hit_units(lambda seeds: self.proposals(artefact, snapshot, seeds), snapshot.heldout)
        return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


register_kind(GeneratorKind())


# -- what it generates for -----------------------------------------------------------------


def _window_totals(field_name: str, since) -> list[tuple[str, int]]:
    rows = (QueryDailyStat.objects.filter(date__gte=since, **{f"{field_name}__gt": 0}).values("normalized_query")
            .annotate(total=Sum(field_name)).order_by("-total", "normalized_query"))
    return [(r["normalized_query"], r["total"]) for r in rows]


def generation_seeds(*, limit: int | None = None, prefix_limit: int = 10) -> dict[str, str]:
    """Seed → why: ``head`` (most searched in ``GENERATOR_WINDOW_DAYS``, k-gated),
    ``zero_results`` (searches that found nothing, privacy-filtered), ``new_type``
    (catalog product types not yet refined), ``thin_prefix`` (served texts of one
    or two words that fewer than ``prefix_limit`` served suggestions extend).
    At most ``limit`` (``SUGGESTIONS_GENERATOR_SEEDS``) of each."""
    limit = app_settings.GENERATOR_SEEDS if limit is None else limit
    since = timezone.localdate() - timedelta(days=app_settings.GENERATOR_WINDOW_DAYS)
    seeds: dict[str, str] = {}
    head = [q for q, _n in _window_totals("searches", since)[: limit * 4] if history_text_allowed(q)]
    shoppers = identified_shoppers(head)
    for q in [q for q in head if shoppers.get(q, 0) >= app_settings.MIN_DISTINCT_USERS][:limit]:
        seeds.setdefault(q, "head")
    zero = [q for q, _n in _window_totals("zero_results", since) if history_text_allowed(q)]
    for q in zero[:limit]:
        seeds.setdefault(q, "zero_results")
    refined = {(p or {}).get("seed_query") for p in Suggestion.objects.filter(
        source=SuggestionSource.GENERATED).values_list("provenance", flat=True)}
    new_types = [t for t, rule in sorted(_catalog_phrases().items()) if rule == "product_type" and t not in refined]
    for t in new_types[:limit]:
        seeds.setdefault(t, "new_type")
    served = list(Suggestion.objects.filter(status=SuggestionStatus.APPROVED).order_by("-weight")
                  .values_list("text", flat=True)[:20000])
    extensions: Counter = Counter()
    short = {t for t in served if len(t.split()) <= 2}
    for text in served:
        words = text.split()
        for n in range(1, len(words)):
            head_text = " ".join(words[:n])
            if head_text in short:
                extensions[head_text] += 1
    thin = [t for t in served if t in short and extensions[t] < prefix_limit]
    for t in thin[:limit]:
        seeds.setdefault(t, "thin_prefix")
    return seeds


# -- the gates -----------------------------------------------------------------------------


@dataclass
class Candidate:
    """A generated text for a seed, with what the gates found."""

    seed: str
    text: str
    score: float
    reason: str = ""
    results: int = 0
    products: list[str] = field(default_factory=list)


def _entity_values(text: str) -> dict[str, set[str]]:
    from .understanding import understand

    try:
        understood = understand(text, schedule=False)
    except Exception:  # noqa: BLE001 - no understanding: nothing to keep
        logger.warning("suggestions: cannot understand %r for the generation gate", text, exc_info=True)
        return {}
    return {label: {facet_key(e.value or e.text) for e in understood.entities_of(label)}
            for label in ("brand", "product_type")}


def keeps_entities(seed_entities: dict[str, set[str]], text: str) -> bool:
    """Whether ``text`` keeps every brand and product type understood in its seed
    (understood in ``text`` too, or all its words there, plurals folded)."""
    from .ml.generator.pairs import fold

    wanted = [(label, v) for label, values in seed_entities.items() for v in values if v]
    if not wanted:
        return True
    found = _entity_values(text)
    words = {fold(w) for w in text.split()}
    return all(v in found.get(label, set()) or {fold(w) for w in v.split()} <= words for label, v in wanted)


def _document_words(doc) -> set[str]:
    from .catalog_phrases import analyse
    from .ml.generator.pairs import fold

    values = [doc.title, doc.brand, doc.product_type, doc.model_number, doc.description]
    values += [str(v) for v in (doc.attributes or {}).values() if isinstance(v, (str, int, float))]
    return {fold(w) for v in values if v for w in analyse(str(v))}


def matching_products(backend, text: str, *, scan: int = MATCH_SCAN) -> list[str]:
    """Ids of the products the recall backend returns for ``text`` (among its
    first ``scan``) that hold every word of it (plurals folded): the products
    the refinement really describes, not those matching only some of its words."""
    from .catalog_phrases import analyse
    from .ml.generator.pairs import fold

    wanted = {fold(w) for w in analyse(text)}
    result = backend.search_products(text, limit=scan)
    return [h.id for h in result.hits if wanted <= _document_words(h.document)]


def gate_candidates(candidates: list[Candidate], *, backend_alias: str = "default") -> tuple[list[Candidate], Counter]:
    """Apply the gates (module contract) in order; returns the survivors and
    how many candidates each gate stopped."""
    from .ml.generator.pairs import word_key
    from .recall import get_backend
    from .serving import current_blocked_matcher

    blocked = current_blocked_matcher()
    taken = {word_key(t) for t in Suggestion.objects.values_list("text", flat=True).iterator(chunk_size=5000)}
    backend = get_backend(backend_alias)
    entities: dict[str, dict[str, set[str]]] = {}
    stopped: Counter = Counter()
    survivors: list[Candidate] = []
    for cand in candidates:
        cand.text = normalize_query(cand.text)
        key = word_key(cand.text)
        if not cand.text or key == word_key(cand.seed):
            stopped["same as the seed"] += 1
            continue
        if not history_text_allowed(cand.text):
            stopped["privacy filter"] += 1
            continue
        if blocked.search(cand.text):
            stopped["blocked term"] += 1
            continue
        if key in taken:
            stopped["near-duplicate"] += 1
            continue
        if cand.seed not in entities:
            entities[cand.seed] = _entity_values(cand.seed)
        if not keeps_entities(entities[cand.seed], cand.text):
            stopped["changes the brand or product type"] += 1
            continue
        matching = matching_products(backend, cand.text)
        cand.results, cand.products = len(matching), matching[:PREVIEW_PRODUCTS]
        if cand.results < app_settings.GENERATED_MIN_RESULTS:
            stopped["too few results"] += 1
            continue
        taken.add(key)
        survivors.append(cand)
    return survivors, stopped


# -- generating ----------------------------------------------------------------------------

_loaded: dict[str, Any] = {"version": None, "model": None}


def active_generator() -> tuple[ModelVersion | None, Any]:
    """The active generator version and its loaded model (reloaded when the
    active version changes)."""
    version = ModelVersion.objects.filter(kind=KIND_GENERATOR, status=ModelVersionStatus.ACTIVE).first()
    if version is None:
        return None, None
    if _loaded["version"] != (version.version, version.artefact_uri):
        from .ml.generator.model import GeneratorModel

        _loaded["model"] = GeneratorModel.load(version.artefact_uri)
        _loaded["version"] = (version.version, version.artefact_uri)
    return version, _loaded["model"]


@dataclass
class GenerationReport:
    model_version: str | None
    seeds: dict[str, int]
    generated: int
    stored: int
    approved: int
    stopped: dict[str, int]
    seconds: float
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def generate_refinements(seeds: Mapping[str, str] | None = None, *, limit: int | None = None,
                         backend_alias: str = "default") -> GenerationReport:
    """Generate, gate and store refinements of the seeds (default:
    :func:`generation_seeds`) with the active generator; worker-only.

    Idempotent: texts already stored (any status) are near-duplicates, so a
    rerun adds only new ones. Without an active generator nothing happens.
    """
    started = time.perf_counter()
    version, model = active_generator()
    if version is None:
        return GenerationReport(None, {}, 0, 0, 0, {}, 0.0, "no active generator version: train one first")
    seeds = dict(seeds) if seeds is not None else generation_seeds(limit=limit)
    seeds = {normalize_query(s): why for s, why in seeds.items() if normalize_query(s)}
    words = vocabulary(Suggestion.objects.filter(source=SuggestionSource.HISTORY, status=SuggestionStatus.APPROVED)
                       .exclude(provenance__rule="variant").values_list("text", flat=True))
    order = list(seeds)
    outputs = model.generate(order, words, k=app_settings.GENERATOR_CANDIDATES,
                             batch_size=app_settings.GENERATOR_BATCH_SIZE) if order else []
    candidates = [Candidate(seed, text, score, seeds[seed]) for seed, out in zip(order, outputs, strict=True)
                  for text, score in out]
    survivors, stopped = gate_candidates(candidates, backend_alias=backend_alias)
    pairs = _pair_evidence(order)
    auto = app_settings.GENERATED_AUTO_APPROVE
    rows = []
    for cand in survivors:
        approve = (auto and cand.score >= app_settings.GENERATED_AUTO_APPROVE_SCORE
                   and cand.results >= app_settings.GENERATED_AUTO_APPROVE_RESULTS)
        rows.append(Suggestion(
            text=cand.text, source=SuggestionSource.GENERATED,
            status=SuggestionStatus.APPROVED if approve else SuggestionStatus.PENDING,
            weight=round(cand.score * GENERATED_WEIGHT_SCALE, 6),
            provenance={"rule": "generated", "seed_query": cand.seed, "seed_reason": cand.reason,
                        "model_version": version.version, "results": cand.results, "products": cand.products,
                        "score": cand.score, "auto_approved": approve,
                        "pair_evidence": pairs.get((cand.seed, cand.text))
                        or {"training_pairs_of_seed": pairs.get(cand.seed, 0)}}))
    with transaction.atomic():
        created = Suggestion.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    approved = sum(1 for r in rows if r.status == SuggestionStatus.APPROVED)
    if approved:
        from .moderation import notify_suggestions_changed

        notify_suggestions_changed()
    return GenerationReport(version.version, dict(Counter(seeds.values())), len(candidates), len(created), approved,
                            dict(stopped), round(time.perf_counter() - started, 2))


def _pair_evidence(seeds: Iterable[str]) -> dict:
    """The training evidence of each seed's pairs, as stored with a candidate:
    ``(seed, target)`` → ``{"source", "shoppers"}`` and ``seed`` → its number of pairs."""
    wanted = set(seeds)
    out: dict = {}
    if not wanted:
        return out
    recent = timezone.now() - timedelta(days=max(app_settings.GENERATOR_WINDOW_DAYS, 90))
    pairs = training_pairs(history_searches(since=recent), documents=())
    for group in pairs.values():
        for p in group:
            if p.seed in wanted:
                out[(p.seed, p.target)] = {"source": p.source, "shoppers": p.shoppers}
                out[p.seed] = out.get(p.seed, 0) + 1
    return out


# -- review ----------------------------------------------------------------------------------


def review_generated(queryset, decision: str) -> int:
    """Approve or reject generated refinements (the review queue's actions);
    the next training run learns from the decision. Returns how many changed.

    Raises:
        ValueError: ``decision`` is neither ``approved`` nor ``rejected``.
    """
    from .moderation import set_suggestion_status

    if decision not in (SuggestionStatus.APPROVED, SuggestionStatus.REJECTED):
        raise ValueError(f"a generated refinement is approved or rejected, not {decision!r}")
    return set_suggestion_status(queryset.filter(source=SuggestionSource.GENERATED), decision)
