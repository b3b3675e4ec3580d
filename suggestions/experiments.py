"""Online experiments of model versions: A/B tests and team-draft interleaving.

Django-side. An :class:`~suggestions.models.Experiment` compares two versions
of one model kind that the learning loop registered (:mod:`suggestions.learning`):
it never trains nor promotes anything itself. Statistics are in
:mod:`suggestions.experiment_stats`.

Contracts:

* **Lifecycle** (:func:`start_experiment`, :func:`stop_experiment`): drafts
  start, running experiments stop; at most one runs per kind (a database
  constraint). Starting announces
  :data:`~suggestions.signals.experiment_changed`: the workers precompute both
  versions' order of every prefix (:func:`prepare_experiment`, task
  ``suggestions.ml.prepare_experiment``, again after each build), and the
  experiment is served only once they have (``prepared_at``).
* **Assignment** is sticky: a hash of the experiment and the shopper's
  :func:`~suggestions.history.actor_hash` (the signed-in user, else the
  anonymous shopper's cookie or session). A/B splits shoppers by
  ``treatment_share``; interleaving puts every shopper in one of
  :data:`INTERLEAVING_SLOTS` slots, each with its own coin flips per prefix.
  Requests of nobody (no cookie yet) are served as without an experiment and
  recorded in none.
* **Serving** (:func:`serving_arm`, called by :func:`suggestions.serving.suggest`):
  the arm's precomputed order replaces the active ranker's
  (:class:`~suggestions.models.RankedPrefix`); interleaving serves the team
  draft of both orders. The answer cache key carries the arm (or the slot).
  Pinned suggestions, recent searches, moderation and blocked terms apply as
  without an experiment.
* **Events**: receivers of ``suggestions_shown`` and ``suggestion_clicked``
  add an :class:`~suggestions.models.ExperimentEvent` with the shopper's arm
  (interleaving: which version contributed each shown suggestion, and the
  clicked one's team).
* **Results** (:func:`experiment_results`): per arm, shoppers, lists shown,
  click-through (lists with a chosen suggestion / lists) and MRR (1 / (position
  + 1) of the chosen suggestion, 0 when none, per list), with delta-method 95%
  intervals over shoppers, the treatment-minus-control difference, and the
  sample-ratio check; interleaving: wins, losses and ties per list and the
  sign test. With plain sentences for a merchandiser.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import experiment_stats as st
from . import signals
from .models import (
    Experiment,
    ExperimentArm,
    ExperimentEvent,
    ExperimentEventKind,
    ExperimentMethod,
    ExperimentRanking,
    ExperimentStatus,
    Suggestion,
    SuggestionStatus,
)
from .text import normalize_prefix, normalize_query

#: Kinds an experiment can compare on live shoppers (their versions change what is served).
EXPERIMENT_KINDS = ("suggestion_ranker",)
#: Interleaving slots (see :data:`suggestions.experiment_stats.INTERLEAVING_SLOTS`).
INTERLEAVING_SLOTS = st.INTERLEAVING_SLOTS
#: The arm of interleaving events (every shopper sees both versions).
INTERLEAVED = "interleaved"
#: Length of an interleaved list (the widget shows at most this many).
INTERLEAVED_LENGTH = 10
#: Fewer shoppers than this per arm: the results say it is too early.
MIN_SHOPPERS = 100


# -- lifecycle ------------------------------------------------------------------------------


def start_experiment(experiment: Experiment) -> Experiment:
    """Start a draft experiment.

    Raises:
        ValueError: It is not a draft, its versions do not fit
            (:meth:`Experiment.clean`), its kind cannot be compared live, or
            another experiment of its kind is running; the message says which.
    """
    from django.core.exceptions import ValidationError

    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != ExperimentStatus.DRAFT:
            raise ValueError(_("Only a draft experiment can be started; “%(name)s” is %(status)s.")
                             % {"name": experiment.name, "status": experiment.get_status_display().lower()})
        if experiment.kind not in EXPERIMENT_KINDS:
            raise ValueError(_("Experiments of “%(kind)s” cannot be served yet; only the suggestion ranker's can.")
                             % {"kind": experiment.kind})
        try:
            experiment.full_clean()
        except ValidationError as exc:
            raise ValueError(" ".join(exc.messages)) from exc
        other = Experiment.objects.filter(kind=experiment.kind, status=ExperimentStatus.RUNNING).first()
        if other is not None:
            raise ValueError(_("“%(other)s” is already running for this model; stop it first.") % {"other": other.name})
        experiment.status = ExperimentStatus.RUNNING
        experiment.started_at = timezone.now()
        experiment.prepared_at = None
        try:
            with transaction.atomic():
                experiment.save(update_fields=["status", "started_at", "prepared_at"])
        except IntegrityError as exc:  # a concurrent start of the same kind won
            raise ValueError(_("Another experiment of this model was started at the same time; stop it first.")) from exc
        transaction.on_commit(lambda: signals.experiment_changed.send(sender=Experiment, experiment_id=experiment.pk))
    return experiment


def stop_experiment(experiment: Experiment) -> Experiment:
    """Stop a running experiment: shoppers get the active version again; the
    events and results are kept, the precomputed orders are removed.

    Raises:
        ValueError: It is not running.
    """
    from .serving import invalidate_cache

    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != ExperimentStatus.RUNNING:
            raise ValueError(_("Only a running experiment can be stopped; “%(name)s” is %(status)s.")
                             % {"name": experiment.name, "status": experiment.get_status_display().lower()})
        experiment.status = ExperimentStatus.STOPPED
        experiment.stopped_at = timezone.now()
        experiment.save(update_fields=["status", "stopped_at"])
        ExperimentRanking.objects.filter(experiment=experiment).delete()
        transaction.on_commit(invalidate_cache)
    return experiment


def running_experiments() -> list[Experiment]:
    """Experiments currently running (at most one per kind)."""
    return list(Experiment.objects.filter(status=ExperimentStatus.RUNNING).select_related("control", "treatment"))


def prepare_experiment(experiment_id: int) -> int:
    """Precompute both arms' order of every prefix (worker-only: loads the
    rankers). Idempotent; does nothing for an experiment that is not running.

    Returns:
        The number of rows stored (0 when not running).
    """
    from .learning import KINDS
    from .serving import invalidate_cache

    experiment = Experiment.objects.filter(pk=experiment_id).select_related("control", "treatment").first()
    if experiment is None or experiment.status != ExperimentStatus.RUNNING:
        return 0
    from .ml.suggestion_ranker import RankerModel, ranking_table

    kind = KINDS[experiment.kind]
    served = dict(Suggestion.objects.filter(status=SuggestionStatus.APPROVED).values_list("text", "source"))
    stats = kind.stats(kind.searches(), kind.catalog(), served=set(served))
    rows = []
    for arm, version in ((ExperimentArm.CONTROL, experiment.control), (ExperimentArm.TREATMENT, experiment.treatment)):
        if version is None:  # no model: the popularity (first-stage) order
            table = {p: stats.pool(p)[:20] for p in stats.prefixes()}
        else:
            table = ranking_table(RankerModel.load(version.artefact_uri), stats)
        rows += [ExperimentRanking(experiment=experiment, arm=arm, prefix=p, texts=[[t, served[t]] for t in texts])
                 for p, texts in table.items() if len(p) <= 100]
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().filter(pk=experiment.pk, status=ExperimentStatus.RUNNING)
        if not locked.exists():
            return 0
        ExperimentRanking.objects.filter(experiment=experiment).delete()
        ExperimentRanking.objects.bulk_create(rows, batch_size=2000)
        locked.update(prepared_at=timezone.now())
        transaction.on_commit(invalidate_cache)
    return len(rows)


def prepare_running_experiments() -> list[int]:
    """Ids of the running experiments (each to be prepared again after a build)."""
    return list(Experiment.objects.filter(status=ExperimentStatus.RUNNING).values_list("pk", flat=True))


# -- serving --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Served:
    """What serving needs of a running, prepared experiment."""

    pk: int
    kind: str
    method: str
    treatment_share: float


class _Memo:
    """The running experiments, loaded once per cache version per process
    (starting, preparing and stopping change the version)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: str | None = None
        self.served: dict[str, _Served] = {}

    def get(self, version: str | None) -> dict[str, _Served]:
        if version is not None and version == self.version:
            return self.served
        served = {e.kind: _Served(e.pk, e.kind, e.method, e.treatment_share)
                  for e in Experiment.objects.filter(status=ExperimentStatus.RUNNING, prepared_at__isnull=False)}
        if version is not None:
            with self.lock:
                self.version, self.served = version, served
        return served


_memo = _Memo()


def reset_memo() -> None:
    """Forget this process's memo of running experiments."""
    with _memo.lock:
        _memo.version, _memo.served = None, {}


def _assign(experiment: _Served | Experiment, actor: str) -> tuple[str, int | None]:
    """``(arm, interleaving slot)`` of a shopper."""
    point = st.assignment_point(experiment.pk, actor)
    if experiment.method == ExperimentMethod.INTERLEAVING:
        return INTERLEAVED, min(int(point * INTERLEAVING_SLOTS), INTERLEAVING_SLOTS - 1)
    share = float(experiment.treatment_share)
    return st.choose_arm(point, [(ExperimentArm.CONTROL, 1 - share), (ExperimentArm.TREATMENT, share)]), None


def assign(experiment: Experiment, *, user=None, session_key: str | None = None) -> str | None:
    """The arm of a shopper in an experiment (``None``: nobody, not assigned)."""
    from .history import actor_hash

    actor = actor_hash(user, session_key)
    return _assign(experiment, actor)[0] if actor else None


def _approved_order(experiment_id: int, arm: str, prefix: str) -> list[tuple[str, str]]:
    row = (ExperimentRanking.objects.filter(experiment_id=experiment_id, arm=arm, prefix=prefix)
           .values_list("texts", flat=True).first())
    return [(t, s) for t, s in row] if row else []


def _approved(texts: list[str]) -> set[str]:
    return set(Suggestion.objects.filter(status=SuggestionStatus.APPROVED, text__in=texts).values_list("text", flat=True))


def interleaved(experiment_id: int, slot: int, prefix: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The team draft served to ``slot`` for ``prefix``: ``([(text, source)], text → team)``,
    from both arms' orders restricted to what is approved now."""
    control = _approved_order(experiment_id, ExperimentArm.CONTROL, prefix)
    treatment = _approved_order(experiment_id, ExperimentArm.TREATMENT, prefix)
    approved = _approved([t for t, _s in control + treatment])
    sources = {t: s for t, s in control + treatment}
    merged, teams = st.team_draft([t for t, _s in control if t in approved], [t for t, _s in treatment if t in approved],
                                  limit=INTERLEAVED_LENGTH, seed=st.interleaving_seed(experiment_id, slot, prefix))
    return [(t, sources[t]) for t in merged], teams


@dataclass(frozen=True)
class ServingArm:
    """How :func:`suggestions.serving.suggest` serves one shopper in an experiment."""

    experiment_id: int
    arm: str
    slot: int | None = None

    @property
    def cache_tag(self) -> str:
        """Part of the answer cache key: answers differ by arm (and slot)."""
        return f":x{self.experiment_id}{self.arm[0]}{'' if self.slot is None else self.slot}"

    def ranked(self, prefix: str) -> list[tuple[str, str]]:
        """The arm's ``(text, source)`` order of ``prefix``, approved now."""
        if self.slot is not None:
            return interleaved(self.experiment_id, self.slot, prefix)[0]
        order = _approved_order(self.experiment_id, self.arm, prefix)
        approved = _approved([t for t, _s in order])
        return [(t, s) for t, s in order if t in approved]


def serving_arm(user=None, session_key: str | None = None, version: str | None = None,
                kind: str = "suggestion_ranker") -> ServingArm | None:
    """The shopper's arm in the running, prepared experiment of ``kind``, if any.

    ``version`` is the cache version (the running experiments are loaded once per
    version); ``None`` reads them from the database.
    """
    experiment = _memo.get(version).get(kind)
    if experiment is None:
        return None
    from .history import actor_hash

    actor = actor_hash(user, session_key)
    if not actor:
        return None
    arm, slot = _assign(experiment, actor)
    return ServingArm(experiment.pk, arm, slot)


# -- events ---------------------------------------------------------------------------------


def _running_for(actor: str) -> list[Experiment]:
    if not actor:
        return []
    from .history import current_batch

    # Read once per ``POST events/`` batch (one transaction), not once per event.
    batch = current_batch()
    if batch is not None and "running_experiments" in batch.memo:
        return batch.memo["running_experiments"]
    running = list(Experiment.objects.filter(status=ExperimentStatus.RUNNING, prepared_at__isnull=False,
                                             kind__in=EXPERIMENT_KINDS))
    if batch is not None:
        batch.memo["running_experiments"] = running
    return running


def record_impression(*, request_id: str, prefix: str, suggestions: list[str], user=None,
                      session_key: str | None = None, **_: object) -> None:
    """Receiver of ``suggestions_shown``: the shopper's arm of each running experiment."""
    from .history import actor_hash

    actor = actor_hash(user, session_key)
    for experiment in _running_for(actor):
        arm, slot = _assign(experiment, actor)
        teams = {}
        if slot is not None:
            shown = {normalize_query(s) for s in suggestions}
            teams = {t: team for t, team in interleaved(experiment.pk, slot, normalize_prefix(prefix))[1].items()
                     if t in shown}
        ExperimentEvent.objects.create(experiment=experiment, arm=arm, kind=ExperimentEventKind.IMPRESSION,
                                       request_id=request_id, actor_hash=actor, teams=teams)


def record_click(*, request_id: str, prefix: str, suggestion: str, position: int, user=None,
                 session_key: str | None = None, **_: object) -> None:
    """Receiver of ``suggestion_clicked``: the arm (and, interleaving, the team) of the click."""
    from .history import actor_hash

    actor = actor_hash(user, session_key)
    text = normalize_query(suggestion)
    for experiment in _running_for(actor):
        arm, slot = _assign(experiment, actor)
        team = ""
        if slot is not None:
            shown = (ExperimentEvent.objects.filter(experiment=experiment, kind=ExperimentEventKind.IMPRESSION,
                                                    request_id=request_id).values_list("teams", flat=True).first())
            if shown is None:  # the impression was not reported: the list as it would be served now
                shown = interleaved(experiment.pk, slot, normalize_prefix(prefix))[1]
            team = shown.get(text, "")
        ExperimentEvent.objects.create(experiment=experiment, arm=arm, kind=ExperimentEventKind.CLICK,
                                       request_id=request_id, actor_hash=actor, position=position, team=team)


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmResult:
    """One arm of an A/B experiment."""

    arm: str
    label: str
    shoppers: int
    impressions: int
    clicked: int
    ctr: st.RatioEstimate
    mrr: st.RatioEstimate


@dataclass(frozen=True)
class InterleavingResult:
    """Interleaving: lists whose clicks preferred each version."""

    lists: int
    control_wins: int
    treatment_wins: int
    ties: int
    p_value: float
    #: Share of decided lists the treatment won, with its 95% interval.
    treatment_share: float
    low: float
    high: float


@dataclass
class ExperimentResults:
    experiment: Experiment
    arms: list[ArmResult] = field(default_factory=list)
    ctr_difference: st.Difference | None = None
    mrr_difference: st.Difference | None = None
    sample_ratio: st.SampleRatio | None = None
    interleaving: InterleavingResult | None = None
    sentences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _version_label(version) -> str:
    return _("version %(v)s") % {"v": version.version} if version is not None else _("no model (popularity order)")


def experiment_results(experiment: Experiment) -> ExperimentResults:
    """Per-arm metrics, intervals, the sample-ratio check and the sentences (module contract)."""
    result = ExperimentResults(experiment)
    clicks: dict[str, list[tuple[int | None, str]]] = defaultdict(list)
    for request_id, position, team in (ExperimentEvent.objects.filter(experiment=experiment, kind=ExperimentEventKind.CLICK)
                                       .values_list("request_id", "position", "team")):
        clicks[str(request_id)].append((position, team))
    impressions = list(ExperimentEvent.objects.filter(experiment=experiment, kind=ExperimentEventKind.IMPRESSION)
                       .values_list("arm", "actor_hash", "request_id"))
    if experiment.method == ExperimentMethod.INTERLEAVING:
        _interleaving_results(result, impressions, clicks)
    else:
        _ab_results(result, impressions, clicks)
    return result


def _ab_results(result: ExperimentResults, impressions, clicks) -> None:
    experiment = result.experiment
    # Per arm, per shopper: [lists shown, lists with a click, summed reciprocal rank].
    units: dict[str, dict[str, list[float]]] = {ExperimentArm.CONTROL: {}, ExperimentArm.TREATMENT: {}}
    seen: set[str] = set()
    for arm, actor, request_id in impressions:
        key = str(request_id)
        if arm not in units or key in seen:  # a list reported twice counts once
            continue
        seen.add(key)
        row = units[arm].setdefault(actor, [0.0, 0.0, 0.0])
        positions = [p for p, _t in clicks.get(key, ()) if p is not None]
        row[0] += 1
        if positions:
            row[1] += 1
            row[2] += 1.0 / (min(positions) + 1)
    arrays = {}
    for arm, version in ((ExperimentArm.CONTROL, experiment.control), (ExperimentArm.TREATMENT, experiment.treatment)):
        rows = list(units[arm].values())
        n = [r[0] for r in rows]
        c = [r[1] for r in rows]
        rr = [r[2] for r in rows]
        arrays[arm] = (n, c, rr)
        result.arms.append(ArmResult(
            arm, f"{ExperimentArm(arm).label}: {_version_label(version)}", len(rows), int(sum(n)), int(sum(c)),
            st.ratio_estimate(c, n), st.ratio_estimate(rr, n)))
    (nc, cc, rc), (nt, ct, rt) = arrays[ExperimentArm.CONTROL], arrays[ExperimentArm.TREATMENT]
    result.ctr_difference = st.ratio_difference((cc, nc), (ct, nt))
    result.mrr_difference = st.ratio_difference((rc, nc), (rt, nt))
    share = float(experiment.treatment_share)
    result.sample_ratio = st.sample_ratio_check(
        {a.arm: a.shoppers for a in result.arms}, {ExperimentArm.CONTROL: 1 - share, ExperimentArm.TREATMENT: share})
    control, treatment = result.arms
    if result.sample_ratio.mismatch:
        result.warnings.append(_(
            "Sample ratio mismatch: %(c)d shoppers saw the control and %(t)d the treatment, where %(ec).0f and "
            "%(et).0f were expected (p = %(p).1g). Shoppers are not split as configured, or one version's events "
            "are lost: do not trust these results until this is fixed.") % {
            "c": control.shoppers, "t": treatment.shoppers, "ec": result.sample_ratio.expected[ExperimentArm.CONTROL],
            "et": result.sample_ratio.expected[ExperimentArm.TREATMENT], "p": result.sample_ratio.p_value})
    if min(control.shoppers, treatment.shoppers) < MIN_SHOPPERS:
        result.sentences.append(_("Too early to tell: fewer than %(n)d shoppers have seen each version so far.")
                                % {"n": MIN_SHOPPERS})
    for name, metric, diff in ((_("led to a chosen suggestion"), "ctr", result.ctr_difference),
                               (_("MRR (how high the chosen suggestion was: 1 = always first)"), "mrr",
                                result.mrr_difference)):
        c_val, t_val = getattr(control, metric).value, getattr(treatment, metric).value
        if metric == "ctr":
            figures = _("%(t).1f%% of the treatment's suggestion lists %(name)s, against %(c).1f%% of the control's "
                        "(difference %(d)+.1f points, 95%% interval %(lo)+.1f to %(hi)+.1f).") % {
                "t": 100 * t_val, "c": 100 * c_val, "name": name, "d": 100 * diff.value,
                "lo": 100 * diff.low, "hi": 100 * diff.high}
        else:
            figures = _("%(name)s: %(t).3f for the treatment against %(c).3f for the control (difference %(d)+.3f, "
                        "95%% interval %(lo)+.3f to %(hi)+.3f).") % {
                "name": name, "t": t_val, "c": c_val, "d": diff.value, "lo": diff.low, "hi": diff.high}
        if diff.significant:
            verdict = (_("The treatment is better; this is unlikely to be chance (p = %(p).2g).") if diff.value > 0
                       else _("The treatment is worse; this is unlikely to be chance (p = %(p).2g).")) % {"p": diff.p_value}
        else:
            verdict = _("No clear difference yet (p = %(p).2g): the interval includes zero.") % {"p": diff.p_value}
        result.sentences.append(f"{figures} {verdict}")


def _interleaving_results(result: ExperimentResults, impressions, clicks) -> None:
    wins = {st.CONTROL: 0, st.TREATMENT: 0, "tie": 0}
    seen: set[str] = set()
    for _arm, _actor, request_id in impressions:
        key = str(request_id)
        if key in seen:
            continue
        seen.add(key)
        teams = [t for _p, t in clicks.get(key, ()) if t]
        won = st.winner(teams.count(st.CONTROL), teams.count(st.TREATMENT))
        if won:
            wins[won] += 1
    decided = wins[st.CONTROL] + wins[st.TREATMENT]
    share = wins[st.TREATMENT] / decided if decided else 0.5
    low, high = st.proportion_interval(wins[st.TREATMENT], decided)
    p = st.sign_test(wins[st.TREATMENT], wins[st.CONTROL])
    result.interleaving = InterleavingResult(len(seen), wins[st.CONTROL], wins[st.TREATMENT], wins["tie"], p,
                                             share, low, high)
    experiment = result.experiment
    result.sentences.append(_(
        "Every shopper saw lists mixing both versions; of %(lists)d lists, clicks preferred the treatment (%(tv)s) "
        "in %(t)d and the control (%(cv)s) in %(c)d (%(ties)d ties).") % {
        "lists": len(seen), "t": wins[st.TREATMENT], "c": wins[st.CONTROL], "ties": wins["tie"],
        "tv": _version_label(experiment.treatment), "cv": _version_label(experiment.control)})
    if decided < MIN_SHOPPERS:
        result.sentences.append(_("Too early to tell: fewer than %(n)d lists had a click that prefers one version.")
                                % {"n": MIN_SHOPPERS})
    if p < st.ALPHA:
        result.sentences.append((_("The treatment is preferred (%(s).0f%% of decided lists, 95%% interval %(lo).0f%% to "
                                   "%(hi).0f%%); this is unlikely to be chance (p = %(p).2g).") if share > 0.5 else
                                 _("The control is preferred (the treatment won %(s).0f%% of decided lists, 95%% interval "
                                   "%(lo).0f%% to %(hi).0f%%); this is unlikely to be chance (p = %(p).2g)."))
                                % {"s": 100 * share, "lo": 100 * low, "hi": 100 * high, "p": p})
    else:
        result.sentences.append(_("No clear preference yet (p = %(p).2g).") % {"p": p})
