"""The learning loop: the one way any model kind is trained, evaluated, registered,
promoted and rolled back.

Django-side; importing it imports no torch (the model code in :mod:`suggestions.ml` is
imported inside the functions that train, and only workers and commands call those).
Admin actions, tasks and commands reach these functions through :mod:`suggestions.services`.

Sections:

* **Model versions** (every kind): :func:`new_version_label`, :func:`register_version`,
  :func:`promote`, :func:`retire`, :func:`rollback`.
* **The loop** (every kind): :func:`retrain` with its evaluation gate (:func:`gate`,
  :func:`paired_bootstrap`) and the retrain lock; kinds plug in as :class:`ModelKind`.
* **Understanding**: its training data from the database (:func:`catalog_examples`,
  :func:`behaviour_examples`, :func:`correction_examples`,
  :func:`understanding_training_data`) and its kind (:class:`UnderstandingKind`).
* **Suggestion ranker**: :class:`SuggestionRankerKind` and :func:`refresh_rankings`.
* **Generator**: :class:`~suggestions.generation.GeneratorKind`, registered when
  :mod:`suggestions.generation` is imported (at the end of this module).

Contracts:

* At most one ``active`` version per kind, enforced by a database constraint.
  :func:`promote`, :func:`retire` and :func:`rollback` run in a transaction with the
  versions of the kind locked, so concurrent promotions cannot both win, and announce
  :data:`~suggestions.signals.active_model_changed` once the transaction commits.
* A trained model is registered as a ``candidate``; it becomes ``active`` only through
  :func:`promote`, either by a person (admin action) or by the gate.
* The gate promotes a challenger only when it beats the active version (or the kind's
  model-free baseline) on the same held-out units by the kind's margin, with the
  paired-bootstrap 95% interval of the gain above zero; otherwise the version is kept as
  ``rejected`` with both sides' metrics and the reason. An active version that cannot be
  evaluated loses to the baseline comparison.
* Training data from the database (understanding):

  ``catalog``
      Distant supervision: the catalog gazetteer tags the shop's searched queries
      (``SearchEvent.normalized_query``) and product titles.
  ``behaviour``
      Distant supervision: the brand and product type of the products clicked after a
      query (``ProductClick`` → adapter documents) label the query's spans that spell them.
  ``corrections``
      Merchandisers' labels (``QueryLabel``): weight ``SUGGESTIONS_CORRECTION_WEIGHT`` in
      the loss, repeated per epoch, always in the training split, and they replace every
      other example of the same normalised query. A labelled query therefore changes the
      next model's answer for it.

  The public sources (``queryner``, ``jie2019``) and the composed ``templates`` are read
  by :mod:`suggestions.ml.understanding.dataset`. The training window of a version is the
  span of the search events and clicks its examples came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .adapter import get_adapter
from .conf import app_settings
from .models import ModelVersion, ModelVersionStatus, RetrainRun, RetrainRunStatus
from .text import normalize_query

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .ml.understanding.corpora import Example
    from .ml.understanding.dataset import TrainingData

logger = logging.getLogger(__name__)


# -- model versions ------------------------------------------------------------------------


def new_version_label(kind: str) -> str:
    """Timestamp-based version label, unique per kind (a suffix is added on a clash)."""
    base = timezone.now().strftime("%Y%m%d-%H%M%S")
    label, n = base, 1
    while ModelVersion.objects.filter(kind=kind, version=label).exists():
        n += 1
        label = f"{base}-{n}"
    return label


def register_version(kind: str, *, artefact_uri: str, metrics: dict[str, Any], version: str | None = None,
                     training_window_start: datetime | None = None,
                     training_window_end: datetime | None = None, notes: str = "") -> ModelVersion:
    """Record a trained model as a ``candidate`` version of ``kind``.

    Args:
        kind: Model kind, e.g. ``"understanding"``.
        artefact_uri: Where the trained model is saved.
        metrics: Its evaluation.
        version: Version label (default: :func:`new_version_label`).
        training_window_start: First event of the training data, if known.
        training_window_end: Last event of the training data, if known.
        notes: Free text (JSON of the training parameters, by convention).

    Returns:
        The new version.
    """
    return ModelVersion.objects.create(
        kind=kind, version=version or new_version_label(kind), artefact_uri=artefact_uri, metrics=metrics,
        training_window_start=training_window_start, training_window_end=training_window_end,
        status=ModelVersionStatus.CANDIDATE, notes=notes,
    )


def _notify_active_model_changed(kind: str) -> None:
    # After commit: workers reload and re-run only once the change is visible.
    transaction.on_commit(lambda: signals.active_model_changed.send(sender=ModelVersion, kind=kind))


def _lock_kind(kind: str) -> list[ModelVersion]:
    # Locking every version of the kind serialises promotions of that kind
    # (no-op on SQLite, which serialises writers anyway).
    return list(ModelVersion.objects.select_for_update().filter(kind=kind).order_by("pk"))


def promote(version: ModelVersion) -> ModelVersion:
    """Make a version the active one of its kind.

    Retires the currently active version of the same kind, activates
    ``version`` and sets its ``promoted_at``. Promoting the active version
    changes nothing.

    Args:
        version: Version to promote (candidate or retired).

    Returns:
        The promoted version, refreshed.
    """
    with transaction.atomic():
        _lock_kind(version.kind)
        version.refresh_from_db()
        if version.status == ModelVersionStatus.ACTIVE:
            return version
        # Retire first: the one-active-per-kind constraint is checked per row.
        ModelVersion.objects.filter(kind=version.kind, status=ModelVersionStatus.ACTIVE).update(
            status=ModelVersionStatus.RETIRED
        )
        version.status = ModelVersionStatus.ACTIVE
        version.promoted_at = timezone.now()
        version.save(update_fields=["status", "promoted_at"])
        _notify_active_model_changed(version.kind)
    return version


def retire(version: ModelVersion) -> ModelVersion:
    """Retire a version; if it was active, its kind has no active version.

    Args:
        version: Version to retire.

    Returns:
        The retired version.
    """
    with transaction.atomic():
        _lock_kind(version.kind)
        version.refresh_from_db()
        if version.status != ModelVersionStatus.RETIRED:
            was_active = version.status == ModelVersionStatus.ACTIVE
            version.status = ModelVersionStatus.RETIRED
            version.save(update_fields=["status"])
            if was_active:
                _notify_active_model_changed(version.kind)
    return version


def rollback(kind: str) -> ModelVersion:
    """Re-activate the version that was active before the current one.

    The target is the retired version of ``kind`` promoted most recently before
    the current active one (or most recently at all when none is active). The
    current active version is retired. ``promoted_at`` of the target is left
    as it was, so that rolling back again walks further back through the
    promotion history instead of toggling between two versions.

    Args:
        kind: Model kind, e.g. ``"ranker"``.

    Returns:
        The re-activated version.

    Raises:
        ValueError: No earlier promoted version of this kind exists.
    """
    with transaction.atomic():
        versions = _lock_kind(kind)
        current = next((v for v in versions if v.status == ModelVersionStatus.ACTIVE), None)
        candidates = [
            v
            for v in versions
            if v.status == ModelVersionStatus.RETIRED
            and v.promoted_at is not None
            and (
                current is None
                or current.promoted_at is None
                or v.promoted_at < current.promoted_at
            )
        ]
        if not candidates:
            raise ValueError(
                _("No earlier promoted version of “%(kind)s” to roll back to.") % {"kind": kind}
            )
        target = max(candidates, key=lambda v: v.promoted_at)
        if current is not None:
            current.status = ModelVersionStatus.RETIRED
            current.save(update_fields=["status"])
        target.status = ModelVersionStatus.ACTIVE
        target.save(update_fields=["status"])
        _notify_active_model_changed(kind)
    return target


# -- understanding: training data from the database ------------------------------------------

KIND_UNDERSTANDING = "understanding"


def catalog_examples(gazetteer: Any, *, max_queries: int = 5000, max_titles: int = 3000,
                     labels: Sequence[str] = ()) -> tuple[list[Example], list[datetime]]:
    """Distant supervision: the gazetteer tags searched queries and product titles.

    Only queries with at least one tagged span become examples (an untagged
    query says nothing reliable: the gazetteer does not know every word).

    Returns:
        ``(examples, timestamps of the search events used)``.
    """
    from django.db.models import Count, Max, Min

    from .ml.understanding.corpora import Example
    from .models import SearchEvent

    known = set(labels)
    out: list[Example] = []
    times: list[datetime] = []
    rows = (SearchEvent.objects.exclude(normalized_query="").values("normalized_query")
            .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
            .order_by("-n")[:max_queries])
    for row in rows:
        text = row["normalized_query"]
        spans = [(e.label, e.start, e.end) for e in gazetteer.tag(text) if not known or e.label in known]
        if spans:
            out.append(Example(text=text, spans=spans, source="catalog"))
            times += [row["first"], row["last"]]
    try:
        docs = get_adapter().iter_documents() if app_settings.ADAPTER else iter(())
    except Exception:  # noqa: BLE001 - no catalog: queries only
        docs = iter(())
    for n, doc in enumerate(docs):
        if n >= max_titles:
            break
        text = normalize_query(doc.title)
        spans = [(e.label, e.start, e.end) for e in gazetteer.tag(text) if not known or e.label in known]
        if spans:
            out.append(Example(text=text, spans=spans, source="catalog"))
    return out, times


def _find_phrase(text: str, phrase: str) -> list[tuple[int, int]]:
    """Where ``phrase`` occurs in ``text`` as whole words (case-insensitive)."""
    phrase = normalize_query(phrase)
    if not phrase:
        return []
    han = any("\u4e00" <= ch <= "\u9fff" for ch in phrase)
    pattern = re.escape(phrase) if han else rf"(?<!\w){re.escape(phrase)}s?(?!\w)"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text)]


def behaviour_examples(*, max_queries: int = 5000) -> tuple[list[Example], list[datetime]]:
    """Distant supervision from clicks: a query's spans that spell the brand or
    the product type of a product clicked after it.

    Returns:
        ``(examples, timestamps of the clicks used)``.
    """
    from django.contrib.contenttypes.models import ContentType

    from .ml.understanding.corpora import Example
    from .models import ProductClick

    if not app_settings.ADAPTER:
        return [], []
    adapter = get_adapter()
    product_ct = ContentType.objects.get_for_model(adapter.get_model())
    clicks: dict[str, set[str]] = defaultdict(set)
    times: dict[str, list[datetime]] = defaultdict(list)
    for query, object_id, created in (ProductClick.objects.filter(content_type=product_ct).exclude(query="")
                                      .values_list("query", "object_id", "created_at")
                                      .order_by("-created_at")[: max_queries * 10]):
        key = normalize_query(query)
        if key and (key in clicks or len(clicks) < max_queries):
            clicks[key].add(object_id)
            times[key].append(created)
    ids = sorted({i for s in clicks.values() for i in s})
    docs = {}
    for first in range(0, len(ids), 500):
        for doc in adapter.get_documents(ids[first:first + 500]):
            docs[doc.id] = doc
    out: list[Example] = []
    used: list[datetime] = []
    for query, product_ids in clicks.items():
        spans: list[tuple[str, int, int]] = []
        taken: list[tuple[int, int]] = []
        for pid in sorted(product_ids):
            doc = docs.get(pid)
            if doc is None:
                continue
            for label, value in (("brand", doc.brand), ("product_type", doc.product_type)):
                for start, end in _find_phrase(query, value or ""):
                    if all(end <= a or start >= b for a, b in taken):
                        spans.append((label, start, end))
                        taken.append((start, end))
        if spans:
            out.append(Example(text=query, spans=sorted(spans, key=lambda s: s[1]), source="behaviour"))
            used += times[query]
    return out, used


def correction_examples(weight: float, intents: Sequence[str]) -> list[Example]:
    """Merchandisers' labels as heavily weighted examples (always trained on).

    A ``corrected`` label's entity list is authoritative (an empty list means
    "no entities"); its intent, when set, too. ``confirmed`` / ``imported``
    labels may be held out for evaluation like other data.
    """
    from .ml.understanding.corpora import Example
    from .models import QueryLabel, QueryLabelSource

    out = []
    for label in QueryLabel.objects.all().order_by("pk"):
        spans = []
        for ent in label.entities or []:
            try:
                spans.append((str(ent["label"]), int(ent["start"]), int(ent["end"])))
            except (KeyError, TypeError, ValueError):
                continue
        intent = label.intent if label.intent in intents else None
        corrected = label.source == QueryLabelSource.CORRECTED
        out.append(Example(
            text=label.query, spans=spans, intent=intent, source="corrections", weight=weight,
            intent_weight=weight if intent else 0.0, key=label.normalized_query or normalize_query(label.query),
            heldout_ok=not corrected,
        ))
    return out


def _training_gazetteer() -> Any:
    """A gazetteer fresh from the catalog and labels when an adapter is configured,
    else the process's (built-in lists at least)."""
    from .nlp.gazetteer import build_gazetteer, get_gazetteer

    if app_settings.ADAPTER:
        try:
            return build_gazetteer(save=False)
        except Exception:  # noqa: BLE001 - fall back to the saved one
            logger.warning("cannot build the gazetteer from the catalog", exc_info=True)
    return get_gazetteer()


def understanding_training_data(
    sources: Sequence[str],
    *,
    entity_labels: Sequence[str],
    intents: Sequence[str],
    data_dir: str | None = None,
    max_train: int | None = None,
    seed: int = 13,
    correction_weight: float = 5.0,
    gazetteer: Any = None,
    log: Callable[[str], None] | None = None,
) -> TrainingData:
    """The understanding model's examples: the shop's data from the database and the public
    data, split (:func:`suggestions.ml.understanding.dataset.assemble`), with the training
    window of the shop's events they came from.

    Args:
        sources: Data source names (see the module docstring and
            :data:`~suggestions.ml.understanding.dataset.ALL_SOURCES`).
        entity_labels: The shop's entity labels.
        intents: The shop's intents.
        data_dir: Shared data folder of the public sources.
        max_train: Cap on the training examples of each non-correction source.
        seed: Seed of the sampling under ``max_train``.
        correction_weight: Loss weight of corrections.
        gazetteer: Gazetteer of the catalog source and of the rules' weak intents
            (default: :func:`_training_gazetteer` for ``catalog``, else the built-in lists).
        log: Receives progress lines.
    """
    from .ml.understanding.dataset import assemble

    if gazetteer is None and "catalog" in sources:
        gazetteer = _training_gazetteer()
    times: list[datetime] = []

    def catalog() -> list[Example]:
        examples, used = catalog_examples(gazetteer, labels=entity_labels)
        times.extend(used)
        return examples

    def behaviour() -> list[Example]:
        examples, used = behaviour_examples()
        times.extend(used)
        return examples

    data = assemble(sources, entity_labels=entity_labels, intents=intents, data_dir=data_dir,
                    max_train=max_train, seed=seed, gazetteer=gazetteer, log=log,
                    shop_sources={"catalog": catalog, "behaviour": behaviour,
                                  "corrections": lambda: correction_examples(correction_weight, intents)})
    window = [t for t in times if t is not None]
    data.window_start = min(window) if window else None
    data.window_end = max(window) if window else None
    return data


# -- understanding: one training run ---------------------------------------------------------


def choose_base(base: str | None) -> str:
    """``--base`` as given, else ``SUGGESTIONS_UNDERSTANDING_BASE``."""
    return base or app_settings.UNDERSTANDING_BASE


# -- the loop: one retrain for every kind ------------------------------------------------------


class RetrainBusy(RuntimeError):
    """Another retrain of the same kind is running (the lock is held)."""


@dataclass
class Snapshot:
    """What one retrain trains on and evaluates on.

    Attributes:
        train: Kind-specific training data (never contains held-out items).
        heldout: Kind-specific held-out items (the newest days for history-based kinds).
        window: ``(start, end)`` of the training events, if time-based.
        heldout_window: ``(start, end)`` of the held-out events, if time-based.
        counts: What the snapshot holds, for the log and the version's metrics.
    """

    train: Any
    heldout: Any
    window: tuple[datetime | None, datetime | None] = (None, None)
    heldout_window: tuple[datetime | None, datetime | None] = (None, None)
    counts: dict[str, Any] = field(default_factory=dict)
    #: The run's options (e.g. data sources and hyper-parameters from a command).
    options: dict[str, Any] = field(default_factory=dict)
    #: What a kind computes once per snapshot and reuses (e.g. candidate statistics).
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trained:
    """A challenger trained by a kind: its saved folder and what training reported."""

    artefact: Path
    report: dict[str, Any]
    notes: dict[str, Any] = field(default_factory=dict)
    #: The kind's own evaluation details, stored with the version's metrics.
    metrics: dict[str, Any] = field(default_factory=dict)


class ModelKind:
    """How one kind of model plugs into the loop. Subclasses implement each step;
    the loop (:func:`retrain`) does the rest the same way for every kind.

    Attributes:
        name: The ``ModelVersion.kind``.
        metric: Name of the gate metric (higher is better).
        description: What the model does, in a merchandiser's words.
    """

    name = ""
    metric = ""
    #: The metric in a merchandiser's words.
    metric_label = ""
    description = ""

    def snapshot(self, *, log: Callable[[str], None], options: Mapping[str, Any]) -> Snapshot:
        raise NotImplementedError

    def train(self, snapshot: Snapshot, folder: Path, *, log: Callable[[str], None]) -> Trained:
        raise NotImplementedError

    def evaluation_units(self, artefact: str | None, snapshot: Snapshot) -> np.ndarray | None:
        """Per held-out unit, the values the metric is computed from (rows of
        :meth:`metric_of` input); ``artefact=None`` is the no-model baseline
        (None when the kind has none)."""
        raise NotImplementedError

    def metric_of(self, sums: np.ndarray, n: int) -> np.ndarray:
        """The metric from column sums of evaluation units (vectorised over rows)."""
        return sums[..., 0] / max(n, 1)

    def changed_examples(self, snapshot: Snapshot, artefact: str, incumbent: str | None,
                         limit: int = 5) -> list[dict[str, Any]]:
        """A few inputs whose answer differs between the challenger and the
        incumbent (``None``: the baseline), for the admin: ``{"input", "before",
        "after"}``."""
        return []

    def unit_windows(self, snapshot: Snapshot, windows: int) -> np.ndarray | None:
        """Which of ``windows`` equal time spans of the held-out window each unit
        falls in (None: the units carry no time, or one window)."""
        return None


def newest_days_held_out(items: Sequence[Any], *, log: Callable[[str], None], what: str) -> tuple[list, list]:
    """The items (each with a ``time``, oldest first) split into training and
    held-out parts: the newest ``SUGGESTIONS_HELDOUT_DAYS`` are held out. A young
    shop (more than half its items within those days) holds out its newest
    fifth instead, so that there is something to train on."""
    cut = items[-1].time - timedelta(days=app_settings.HELDOUT_DAYS)
    train = [i for i in items if i.time < cut]
    heldout = [i for i in items if i.time >= cut]
    if len(heldout) > len(items) // 2:
        n = max(1, len(items) // 5)
        train, heldout = list(items[:-n]), list(items[-n:])
        log(f"history shorter than twice the held-out days: holding out the newest {n} {what}")
    return train, heldout


KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Add a kind to the loop (the app registers its own; hosts may add theirs)."""
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; known: {', '.join(sorted(KINDS))}") from None


@dataclass(frozen=True)
class GateResult:
    """The evaluation gate's comparison of challenger and incumbent on the same held-out units."""

    challenger: float
    incumbent: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    promote: bool
    reason: str


def paired_bootstrap(challenger: np.ndarray, incumbent: np.ndarray, metric: Callable[[np.ndarray, int], np.ndarray],
                     *, resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of metric(challenger) − metric(incumbent) over
    resamples of the held-out units (the same resample for both sides)."""
    import numpy as np

    n = len(challenger)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    diffs = metric(weights @ challenger, n) - metric(weights @ incumbent, n)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def gate(kind: ModelKind, challenger: np.ndarray, incumbent: np.ndarray | None, *, margin: float,
         resamples: int, incumbent_name: str, windows: np.ndarray | None = None) -> GateResult:
    """Promote only when the challenger beats the incumbent by ``margin`` with
    the bootstrap interval of the difference above zero, and (when the units
    carry time ``windows``) is not worse in any one of them: a gain that holds
    in one week but not the other is drift, not learning."""
    n = len(challenger)
    ours = float(kind.metric_of(challenger.sum(axis=0), n)) if n else 0.0
    if n == 0:
        return GateResult(ours, None, None, None, None, 0, False, "no held-out data to evaluate on")
    if incumbent is None:
        ok = ours > 0
        return GateResult(ours, None, None, None, None, n, ok,
                          f"no active version and no baseline: promoted with {kind.metric} {ours:.4f}" if ok
                          else f"{kind.metric} is {ours:.4f}: nothing learnt")
    theirs = float(kind.metric_of(incumbent.sum(axis=0), n))
    diff = ours - theirs
    low, high = paired_bootstrap(challenger, incumbent, kind.metric_of, resamples=resamples)
    promote = diff >= margin and low > 0
    per_window = ""
    if windows is not None and len(set(windows.tolist())) > 1:
        gains = []
        for w in sorted(set(windows.tolist())):
            mask = windows == w
            m = int(mask.sum())
            gains.append(float(kind.metric_of(challenger[mask].sum(axis=0), m))
                         - float(kind.metric_of(incumbent[mask].sum(axis=0), m)))
        per_window = "; per held-out window " + ", ".join(f"{g:+.4f}" for g in gains)
        promote = promote and min(gains) >= 0
    verdict = "better" if promote else "not better"
    reason = (f"{kind.metric} {ours:.4f} vs {theirs:.4f} for {incumbent_name} on the same {n} held-out items: "
              f"{diff:+.4f} (95% CI {low:+.4f} to {high:+.4f}; needs ≥ {margin:+.4f} and CI above 0"
              f"{', and no window worse' if per_window else ''}){per_window}: {verdict}")
    return GateResult(ours, theirs, diff, low, high, n, promote, reason)


def artefact_checksum(folder: str | os.PathLike[str]) -> str:
    """SHA-256 over the artefact's files (names and contents, sorted)."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _acquire(kind: str) -> RetrainRun:
    stale = timezone.now() - timedelta(seconds=app_settings.RETRAIN_TIME_LIMIT)
    RetrainRun.objects.filter(kind=kind, status=RetrainRunStatus.RUNNING, started_at__lt=stale).update(
        status=RetrainRunStatus.FAILED, finished_at=timezone.now(), error="timed out (lock released)")
    try:
        with transaction.atomic():
            return RetrainRun.objects.create(kind=kind)
    except IntegrityError:
        raise RetrainBusy(f"a retrain of {kind} is already running") from None


def request_retrain(kind_name: str, options: Mapping[str, Any] | None = None) -> None:
    """Have a worker run :func:`retrain` (task ``suggestions.ml.retrain``, sent
    once the current transaction commits).

    Raises:
        ValueError: unknown kind, or options that are not JSON primitives.
    """
    get_kind(kind_name)
    options = dict(options or {})
    try:
        json.dumps(options)
    except TypeError as exc:
        raise ValueError(f"retrain options must be JSON values: {exc}") from None
    signals.retrain_requested.send(sender=request_retrain, kind=kind_name, options=options)


@dataclass
class RetrainReport:
    run: RetrainRun
    version: ModelVersion | None
    gate: GateResult | None
    promoted: bool


def retrain(kind_name: str, *, log: Callable[[str], None] | None = None,
            options: Mapping[str, Any] | None = None) -> RetrainReport:
    """The one way any model kind is retrained: snapshot, train a challenger,
    evaluate it and the active version on the same held-out units, promote only
    when the gate says better, else keep it as a rejected version.

    Args:
        kind_name: A registered kind (:data:`KINDS`).
        log: Receives progress lines (they are also kept on the :class:`RetrainRun`).
        options: Kind-specific options of this run (data sources, hyper-parameters).

    Raises:
        RetrainBusy: another retrain of the kind is running.
        ValueError: unknown kind, or nothing to learn from.
    """
    kind = get_kind(kind_name)
    run = _acquire(kind.name)
    lines: list[str] = []

    def say(line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        lines.append(f"{stamp} {line}")
        RetrainRun.objects.filter(pk=run.pk).update(log="\n".join(lines))
        if log:
            log(line)

    try:
        say(f"retraining {kind.name}: snapshot")
        snapshot = kind.snapshot(log=say, options=dict(options or {}))
        say(f"snapshot: {json.dumps(snapshot.counts, default=str)}")
        label = new_version_label(kind.name)
        folder = Path(app_settings.MODEL_DIR) / kind.name / label
        trained = kind.train(snapshot, folder, log=say)
        say("evaluating the challenger and the active version on the same held-out window")
        ours = kind.evaluation_units(str(trained.artefact), snapshot)
        active = ModelVersion.objects.filter(kind=kind.name, status=ModelVersionStatus.ACTIVE).first()
        theirs, incumbent = None, None
        if active is not None:
            try:
                theirs = kind.evaluation_units(active.artefact_uri, snapshot)
                incumbent = active.artefact_uri
            except Exception:  # noqa: BLE001 - a broken active artefact loses to any challenger
                logger.warning("cannot evaluate active %s %s", kind.name, active.version, exc_info=True)
                say(f"the active version {active.version} cannot be evaluated; comparing with the baseline")
        if theirs is None:
            theirs = kind.evaluation_units(None, snapshot)
        name = f"active version {active.version}" if incumbent is not None else "no model"
        margin = app_settings.PROMOTION_MARGIN.get(kind.name, app_settings.PROMOTION_MARGIN["default"])
        if ours is None:
            raise ValueError(f"{kind.name}: the challenger could not be evaluated")
        result = gate(kind, ours, theirs, margin=margin, resamples=app_settings.BOOTSTRAP_RESAMPLES,
                      incumbent_name=name, windows=kind.unit_windows(snapshot, app_settings.GATE_WINDOWS))
        say(result.reason)
        metrics = {**trained.metrics, kind.metric: round(result.challenger, 6), "heldout_units": result.n,
                   "train": trained.report, "snapshot": snapshot.counts,
                   "examples": kind.changed_examples(snapshot, str(trained.artefact), incumbent)}
        baseline = ({kind.metric: round(result.incumbent, 6), "version": active.version if incumbent else None}
                    if result.incumbent is not None else {})
        # One transaction: no reader sees the version before its gate decision.
        with transaction.atomic():
            version = register_version(
                kind.name, version=label, artefact_uri=str(trained.artefact), metrics=metrics,
                training_window_start=snapshot.window[0], training_window_end=snapshot.window[1],
                notes=json.dumps(trained.notes, sort_keys=True, default=str))
            version.baseline_metrics = baseline
            version.heldout_window_start, version.heldout_window_end = snapshot.heldout_window
            version.artefact_checksum = artefact_checksum(trained.artefact)
            version.decision = result.reason
            version.status = ModelVersionStatus.CANDIDATE if result.promote else ModelVersionStatus.REJECTED
            version.save()
            if result.promote:
                # promote() announces active_model_changed: the receivers have the
                # workers activate it (re-understand, re-rank prefixes).
                promote(version)
                say(f"promoted {version.version}")
            else:
                say(f"kept the active version; {version.version} is recorded as rejected")
        RetrainRun.objects.filter(pk=run.pk).update(
            status=RetrainRunStatus.PROMOTED if result.promote else RetrainRunStatus.KEPT,
            finished_at=timezone.now(), version=version)
        run.refresh_from_db()
        return RetrainReport(run, version, result, result.promote)
    except Exception as exc:
        RetrainRun.objects.filter(pk=run.pk).update(status=RetrainRunStatus.FAILED, finished_at=timezone.now(),
                                                    error=f"{type(exc).__name__}: {exc}")
        raise


# -- the suggestion ranker --------------------------------------------------------------------


class SuggestionRankerKind(ModelKind):
    """Learning to rank the completions of a typed prefix from what shoppers
    then searched (:mod:`suggestions.ml.suggestion_ranker`).

    * Snapshot: every search in history (erased shoppers' searches are gone
      from it), the newest ``SUGGESTIONS_HELDOUT_DAYS`` held out (the newest
      fifth of the searches when those days hold more than half); the catalog
      phrases currently approved. Candidates pass the same k-anonymity gate
      (identified shoppers only), variant rule and privacy filter as the build;
      the changed examples kept with a version show only prefixes that at
      least ``SUGGESTIONS_MIN_DISTINCT_USERS`` identified shoppers typed.
    * Metric: MRR@10 over the 1..10-character prefixes of each held-out search
      (one unit per search); the no-model baseline is the popularity order.
    * Options: ``label_split`` (default ``SUGGESTIONS_RANKER_LABEL_SPLIT``),
      ``max_groups`` (a cap on training groups), ``shuffle_labels`` (a
      deliberately broken challenger, to check the gate).
    * Activation: on promotion, rollback and each build, the workers
      precompute the active version's order of every prefix into
      :class:`~suggestions.models.RankedPrefix` (:func:`refresh_rankings`,
      task ``suggestions.ml.rank_prefixes``).
    """

    name = "suggestion_ranker"
    metric = "mrr@10"
    metric_label = _("how high the query shoppers then searched was suggested (MRR@10: 1 = always first)")
    description = _("Orders the completions of what a shopper has typed, learnt from what shoppers "
                    "searched after typing it.")

    def searches(self):
        from .ml.suggestion_ranker import Search
        from .models import SearchEvent

        clicked = self.clicked_products()
        rows = (SearchEvent.objects.exclude(normalized_query="").order_by("created_at")
                .values_list("normalized_query", "actor_hash", "identified", "created_at", "request_id")
                .iterator(chunk_size=5000))
        # Unidentified searches keep no actor, so the gate counts them as no
        # shopper, exactly as the build does (suggestions.mining).
        return [Search(q, a if known else "", t, clicked.get(r, ())) for q, a, known, t, r in rows]

    def clicked_products(self) -> dict[Any, tuple[str, ...]]:
        """Search request id → ids of the catalog products clicked from it."""
        from django.contrib.contenttypes.models import ContentType

        from .models import ProductClick

        if not app_settings.ADAPTER:
            return {}
        out: dict[Any, list[str]] = defaultdict(list)
        rows = (ProductClick.objects.filter(content_type=ContentType.objects.get_for_model(get_adapter().get_model()))
                .values_list("request_id", "object_id").iterator(chunk_size=5000))
        for request_id, product in rows:
            out[request_id].append(product)
        return {k: tuple(v) for k, v in out.items()}

    def product_names(self, searches) -> dict[str, set[str]]:
        """Product-name phrase → the clicked products whose names start with it
        (:func:`~suggestions.catalog_phrases.product_name_phrases` of their titles)."""
        from .catalog_phrases import product_name_phrases

        ids = sorted({p for s in searches for p in s.products})
        if not ids or not app_settings.ADAPTER:
            return {}
        adapter = get_adapter()
        names: dict[str, set[str]] = defaultdict(set)
        for first in range(0, len(ids), 500):
            for doc in adapter.get_documents(ids[first:first + 500]):
                for phrase in product_name_phrases(doc.title):
                    names[phrase].add(str(doc.id))
        return dict(names)

    def catalog(self) -> dict[str, int]:
        from .models import Suggestion, SuggestionSource, SuggestionStatus

        rows = Suggestion.objects.filter(source=SuggestionSource.CATALOG, status=SuggestionStatus.APPROVED)
        found = {text: int((prov or {}).get("products") or 1) for text, prov in rows.values_list("text", "provenance")}
        # Approved generated refinements are candidates like catalog phrases (their products: the
        # result count the generator's gate saw); a search started from their chip is their label.
        generated = Suggestion.objects.filter(source=SuggestionSource.GENERATED, status=SuggestionStatus.APPROVED)
        for text, prov in generated.values_list("text", "provenance"):
            found.setdefault(text, int((prov or {}).get("results") or 1))
        return found

    def catalog_weights(self) -> dict[str, float]:
        """The build's first-stage weight of each catalog phrase (rule score × scale)."""
        from .mining import CATALOG_WEIGHT_SCALE
        from .models import Suggestion, SuggestionSource, SuggestionStatus

        rows = Suggestion.objects.filter(source=SuggestionSource.CATALOG, status=SuggestionStatus.APPROVED)
        weights = {text: float(prov["score"]) * CATALOG_WEIGHT_SCALE
                   for text, prov in rows.values_list("text", "provenance") if isinstance((prov or {}).get("score"), float)}
        # Generated ones: the weight they are published with (what the engine orders by).
        generated = Suggestion.objects.filter(source=SuggestionSource.GENERATED, status=SuggestionStatus.APPROVED)
        for text, weight in generated.values_list("text", "weight"):
            weights.setdefault(text, float(weight))
        return weights

    def stats(self, searches, catalog: dict[str, int], served: set[str] | None = None,
              product_names: dict[str, set[str]] | None = None):
        """Candidate statistics of a window, gated, filtered and weighted as the build does."""
        from .mining import CATALOG_WEIGHT_SCALE, history_text_allowed, variant_queries
        from .ml.suggestion_ranker import CandidateStats

        return CandidateStats(
            searches, catalog, app_settings.MIN_DISTINCT_USERS,
            allowed=history_text_allowed, variant_rule=variant_queries,
            served=served, half_life=app_settings.DECAY_HALF_LIFE_DAYS, catalog_weight_scale=CATALOG_WEIGHT_SCALE,
            catalog_weights=self.catalog_weights(),
            product_names=self.product_names(searches) if product_names is None else product_names)

    def snapshot(self, *, log: Callable[[str], None], options: Mapping[str, Any]) -> Snapshot:
        searches = self.searches()
        if not searches:
            raise ValueError("no search history to learn from yet")
        train, heldout = newest_days_held_out(searches, log=log, what="searches")
        catalog = self.catalog()
        return Snapshot(
            train={"searches": train, "catalog": catalog, "product_names": self.product_names(train)},
            heldout=heldout,
            window=(train[0].time if train else None, train[-1].time if train else None),
            heldout_window=(heldout[0].time, heldout[-1].time),
            counts={"train_searches": len(train), "heldout_searches": len(heldout), "catalog_phrases": len(catalog),
                    "shoppers": len({s.actor for s in searches if s.actor})},
            options=dict(options))

    def changed_examples(self, snapshot: Snapshot, artefact: str, incumbent: str | None,
                         limit: int = 5) -> list[dict[str, Any]]:
        from collections import Counter

        from .ml.suggestion_ranker import RankerModel, popularity_rank

        stats = self._train_stats(snapshot)
        new = RankerModel.load(artefact)
        old = RankerModel.load(incumbent) if incumbent else None
        # The prefixes shoppers typed most in the held-out days, 2-4 characters.
        typed = Counter(s.query[:n] for s in snapshot.heldout for n in (2, 3, 4) if len(s.query) > n)
        # Stored with the version for the admin: only prefixes that pass the
        # k-gate, so no one shopper's typing is kept beyond their history.
        typers: dict[str, set[str]] = defaultdict(set)
        for search in snapshot.heldout:
            for n in (2, 3, 4):
                if search.actor and len(search.query) > n:
                    typers[search.query[:n]].add(search.actor)
        out = []
        for prefix, _n in typed.most_common(200):
            if len(typers[prefix]) < app_settings.MIN_DISTINCT_USERS:
                continue
            before = (old.rank(stats, prefix) if old else popularity_rank(stats, prefix))[:3]
            after = new.rank(stats, prefix)[:3]
            if before != after:
                out.append({"input": prefix, "before": before, "after": after})
                if len(out) == limit:
                    break
        return out

    def unit_windows(self, snapshot: Snapshot, windows: int):
        if windows <= 1 or not snapshot.heldout:
            return None
        import numpy as np

        first, last = snapshot.heldout[0].time, snapshot.heldout[-1].time
        span = max((last - first).total_seconds(), 1e-9)
        return np.asarray([min(int((s.time - first).total_seconds() / span * windows), windows - 1)
                           for s in snapshot.heldout])

    def _train_stats(self, snapshot: Snapshot):
        if "stats" not in snapshot.cache:
            snapshot.cache["stats"] = self.stats(snapshot.train["searches"], snapshot.train["catalog"],
                                                 product_names=snapshot.train.get("product_names"))
        return snapshot.cache["stats"]

    def train(self, snapshot: Snapshot, folder: Path, *, log: Callable[[str], None]) -> Trained:
        from .ml.suggestion_ranker import RankerModel, TrainParams, shuffled_labels, training_groups

        opts = snapshot.options
        params = TrainParams(label_split=opts.get("label_split") or app_settings.RANKER_LABEL_SPLIT,
                             **({"max_groups": int(opts["max_groups"])} if opts.get("max_groups") else {}))
        started = time.perf_counter()
        catalog = snapshot.train["catalog"]
        names = snapshot.train.get("product_names")
        x, y, groups = training_groups(snapshot.train["searches"],
                                       lambda part: self.stats(part, catalog, product_names=names), params)
        log(f"{len(groups):,} training groups ({len(y):,} candidates), label split {params.label_split}")
        if opts.get("shuffle_labels"):
            # A deliberately broken challenger (bench/replay): the gate must reject it.
            y = shuffled_labels(y, groups, seed=params.seed)
            log("labels shuffled within each group (a deliberately broken challenger)")
        model = RankerModel.fit(x, y, groups, params)
        model.save(folder)
        seconds = round(time.perf_counter() - started, 1)
        log(f"trained LightGBM lambdarank in {seconds} s")
        return Trained(folder, {"groups": len(groups), "rows": int(len(y)), "seconds": seconds},
                       notes={"params": params.as_dict(), "model": "lightgbm lambdarank",
                              "shuffled_labels": bool(opts.get("shuffle_labels"))})

    def evaluation_units(self, artefact: str | None, snapshot: Snapshot):
        import numpy as np

        from .ml.suggestion_ranker import RankerModel, evaluate, popularity_rank

        stats = self._train_stats(snapshot)
        if artefact is None:
            rank = lambda prefix: popularity_rank(stats, prefix)  # noqa: E731
        else:
            model = RankerModel.load(artefact)
            rank = lambda prefix: model.rank(stats, prefix)  # noqa: E731
        return np.asarray(evaluate(rank, snapshot.heldout), dtype=np.float64).reshape(-1, 1)


def refresh_rankings(version: ModelVersion | None = None) -> int:
    """Precompute the active ranker's order of every prefix's served candidates.

    Without an active ranker the table is emptied (the popularity order serves).
    Returns the number of prefixes stored.
    """
    from .models import RankedPrefix, Suggestion, SuggestionStatus
    from .serving import invalidate_cache

    kind: SuggestionRankerKind = KINDS["suggestion_ranker"]  # type: ignore[assignment]
    if version is None:
        version = ModelVersion.objects.filter(kind=kind.name, status=ModelVersionStatus.ACTIVE).first()
    if version is None:
        RankedPrefix.objects.all().delete()
        invalidate_cache()
        return 0
    from .ml.suggestion_ranker import RankerModel, ranking_table

    served = dict(Suggestion.objects.filter(status=SuggestionStatus.APPROVED).values_list("text", "source"))
    stats = kind.stats(kind.searches(), kind.catalog(), served=set(served))
    table = ranking_table(RankerModel.load(version.artefact_uri), stats)
    rows = [RankedPrefix(prefix=p, texts=[[t, served[t]] for t in texts], model_version=version.version)
            for p, texts in table.items() if len(p) <= 100]
    with transaction.atomic():
        RankedPrefix.objects.all().delete()
        RankedPrefix.objects.bulk_create(rows, batch_size=2000)
    invalidate_cache()
    return len(rows)


register_kind(SuggestionRankerKind())


# -- understanding ----------------------------------------------------------------------------


class UnderstandingKind(ModelKind):
    """Query understanding (intent and entities, :mod:`suggestions.ml.understanding`).

    * Snapshot: :func:`understanding_training_data` from the run's ``sources``
      (default ``SUGGESTIONS_UNDERSTANDING_SOURCES``: the shop's catalog,
      behaviour, corrections and the composed intent templates; public data
      sets when a command names them). Its held-out split is by a hash of the
      normalised query (the same query is on the same side in every run), so
      the challenger and the active version are compared on the same queries.
    * Metric: entity micro-F1 on exact spans; a unit is one held-out query's
      (true positives, predicted, gold) spans. There is no model-free baseline:
      the first model with any F1 is promoted.
    * Options: ``sources``, ``data_dir``, ``base``, ``params`` (a
      ``TrainParams`` or a mapping of its fields), ``max_train``, ``tiny``,
      ``progress``, ``progress_file``.
    """

    name = KIND_UNDERSTANDING
    metric = "entity_f1"
    metric_label = _("share of brands, product types and other entities found exactly (F1)")
    description = _("Reads what a shopper means: the intent of a query and its brands, product types, "
                    "prices and other entities.")

    def snapshot(self, *, log: Callable[[str], None], options: Mapping[str, Any]) -> Snapshot:
        from .ml.encoders import require_ml

        require_ml()
        from .ml.understanding import training

        params = options.get("params")
        if params is None:
            params = training.TrainParams()
        elif isinstance(params, Mapping):
            params = training.TrainParams(**params)
        sources = list(options.get("sources") or app_settings.UNDERSTANDING_SOURCES)
        data = understanding_training_data(
            sources, entity_labels=app_settings.ENTITY_LABELS, intents=app_settings.INTENTS,
            data_dir=options.get("data_dir"), max_train=options.get("max_train"), seed=params.seed,
            correction_weight=app_settings.CORRECTION_WEIGHT, gazetteer=_training_gazetteer(), log=log)
        if not data.train:
            raise ValueError("no training examples: name data sources that have data")
        return Snapshot(train=data, heldout=data.heldout, window=(data.window_start, data.window_end),
                        counts={"train": len(data.train), "heldout": len(data.heldout), "sources": sources},
                        options={**options, "params": params, "sources": sources})

    def train(self, snapshot: Snapshot, folder: Path, *, log: Callable[[str], None]) -> Trained:
        from .ml.understanding import training

        opts = snapshot.options
        tiny = bool(opts.get("tiny"))
        trained = training.train_understanding(
            snapshot.train, entity_labels=app_settings.ENTITY_LABELS, intents=app_settings.INTENTS,
            version=folder.name, artefact=folder, sources=opts["sources"],
            base=None if tiny else choose_base(opts.get("base")), tiny=tiny, params=opts["params"],
            progress=opts.get("progress", False), log=log, progress_file=opts.get("progress_file"))
        notes = {"base": trained["base"], "base_paths": trained["base_paths"], "data": opts["sources"],
                 "max_train": opts.get("max_train"), "params": opts["params"].as_dict()}
        return Trained(folder, trained["metrics"].get("train", {}), notes=notes, metrics=trained["metrics"])

    def evaluation_units(self, artefact: str | None, snapshot: Snapshot):
        if artefact is None:
            return None
        import numpy as np

        from .ml.understanding.registry import load_model
        from .ml.understanding.words import model_words

        model = load_model(artefact)
        examples = [ex for ex in snapshot.heldout if ex.spans is not None]
        predicted = model.predict_words([ex.text for ex in examples],
                                        [ex.words or model_words(ex.text) for ex in examples],
                                        app_settings.UNDERSTANDING_BATCH_SIZE)
        rows = []
        for ex, u in zip(examples, predicted, strict=True):
            gold, pred = set(ex.spans), {(e.label, e.start, e.end) for e in u.entities}
            rows.append((len(gold & pred), len(pred), len(gold)))
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3)

    def metric_of(self, sums, n: int):
        """Micro-F1 from summed (true positives, predicted, gold)."""
        import numpy as np

        tp, pred, gold = sums[..., 0], sums[..., 1], sums[..., 2]
        return np.where(pred + gold > 0, 2 * tp / np.maximum(pred + gold, 1e-12), 0.0)


register_kind(UnderstandingKind())


# -- kinds in their own modules (each registers itself on import): the search ranker
# (suggestions/search_ranking.py) and the refinement generator (suggestions/generation.py).
from . import generation, search_ranking  # noqa: E402, F401
