"""The learning loop (one retrain for every kind, the evaluation gate, the retrain
lock) and its first new kind, the suggestion ranker, with its serving path."""

from __future__ import annotations

import os
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from suggestions import learning, services
from suggestions.history import ImportedSearch, import_searches
from suggestions.mining import variant_queries
from suggestions.models import (
    ModelVersion,
    RankedPrefix,
    RetrainRun,
    Suggestion,
    SuggestionStatus,
)

pytestmark = pytest.mark.django_db


# -- variants of public text -------------------------------------------------------------


def test_variants_are_typos_word_orders_and_leading_words_of_public_text():
    public = {"call of duty black ops", "gears of war"}
    searched = ["call of duty black op", "gears of wer", "call of duty", "ops black call of duty",
                "gears of wra", "halo reach", "gear", "gears of war"]
    assert variant_queries(public, searched) == {
        "call of duty black op",  # one edit (a deletion)
        "gears of wer",  # one edit (a substitution)
        "call of duty",  # leading words
        "ops black call of duty",  # the same words in another order
    }
    # A swap is two edits; short queries must match without an edit.
    assert variant_queries({"xbox"}, ["xbo", "xbx"]) == set()


def test_one_edit_variant_of_a_gated_query_is_served_and_marked(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    now = timezone.now()
    import_searches([ImportedSearch(user=f"u{i}", query="battlefield 3", time=now) for i in range(3)])
    import_searches([ImportedSearch(user="solo", query="batlefield 3", time=now),
                     ImportedSearch(user="solo2", query="my secret plan", time=now)])
    services.build_suggestions(include_catalog=False)
    variant = Suggestion.objects.get(text="batlefield 3")
    assert variant.provenance["rule"] == "variant"
    assert variant.distinct_users == 1
    assert not Suggestion.objects.filter(text="my secret plan").exists()


# -- the evaluation gate -----------------------------------------------------------------


class _Mean(learning.ModelKind):
    name = "test_kind"
    metric = "mean"


def test_gate_promotes_only_a_clear_improvement():
    kind = _Mean()
    rng = np.random.default_rng(0)
    base = rng.random((400, 1))
    better = base + 0.05
    same = base.copy()
    result = learning.gate(kind, better, base, margin=0.01, resamples=500, incumbent_name="v1")
    assert result.promote and result.ci_low > 0 and result.difference == pytest.approx(0.05)
    result = learning.gate(kind, same, base, margin=0.01, resamples=500, incumbent_name="v1")
    assert not result.promote and "not better" in result.reason
    noisy = base + rng.normal(0, 0.5, base.shape) + 0.011  # above the margin, but not significantly
    assert not learning.gate(kind, noisy, base, margin=0.01, resamples=500, incumbent_name="v1").promote


# -- the loop with a kind whose quality the test controls -------------------------------


class _FakeKind(learning.ModelKind):
    """Trains nothing: the 'model' is a file with the score its units will have."""

    name = "fake"
    metric = "score"

    def __init__(self, score: float, *, fail: bool = False) -> None:
        self.score, self.fail = score, fail

    def snapshot(self, *, log, options):
        now = timezone.now()
        return learning.Snapshot(train=[1, 2, 3], heldout=list(range(200)), window=(now - timedelta(days=9), now),
                                 heldout_window=(now - timedelta(days=2), now), counts={"train": 3})

    def train(self, snapshot, folder: Path, *, log):
        if self.fail:
            raise RuntimeError("training exploded")
        folder.mkdir(parents=True)
        (folder / "score.txt").write_text(str(self.score))
        return learning.Trained(folder, {"steps": 1})

    def evaluation_units(self, artefact, snapshot):
        if artefact is None:
            return np.full((len(snapshot.heldout), 1), 0.5)
        score = float(Path(artefact, "score.txt").read_text())
        rng = np.random.default_rng(1)
        return np.clip(score + rng.normal(0, 0.01, (len(snapshot.heldout), 1)), 0, 1)


@pytest.fixture
def fake_kind(settings, tmp_path):
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    kinds = dict(learning.KINDS)
    yield lambda kind: learning.register_kind(kind)
    learning.KINDS.clear()
    learning.KINDS.update(kinds)


def test_retrain_promotes_a_better_challenger_and_records_both_sides(fake_kind):
    fake_kind(_FakeKind(0.7))
    report = services.retrain("fake")
    version = report.version
    assert report.promoted and version.status == "active"
    assert version.metrics["score"] == pytest.approx(0.7, abs=0.01)
    assert version.baseline_metrics["score"] == pytest.approx(0.5)
    assert len(version.artefact_checksum) == 64
    assert version.heldout_window_start is not None and "better" in version.decision
    assert report.run.status == "promoted" and "promoted" in report.run.log


def test_retrain_keeps_the_active_version_when_the_challenger_is_worse(fake_kind):
    fake_kind(_FakeKind(0.7))
    first = services.retrain("fake").version
    fake_kind(_FakeKind(0.6))
    report = services.retrain("fake")
    assert not report.promoted
    assert report.version.status == "rejected"
    assert report.version.baseline_metrics["version"] == first.version
    first.refresh_from_db()
    assert first.status == "active"
    assert report.run.status == "kept"


def test_one_retrain_per_kind_at_a_time_and_a_dead_lock_expires(fake_kind, settings):
    fake_kind(_FakeKind(0.7))
    RetrainRun.objects.create(kind="fake")
    with pytest.raises(services.RetrainBusy):
        services.retrain("fake")
    RetrainRun.objects.filter(kind="fake").update(started_at=timezone.now() - timedelta(hours=5))
    settings.SUGGESTIONS_RETRAIN_TIME_LIMIT = 3600
    assert services.retrain("fake").promoted
    assert RetrainRun.objects.filter(kind="fake", status="failed", error__contains="timed out").count() == 1


def test_a_failed_retrain_is_recorded_and_releases_the_lock(fake_kind):
    fake_kind(_FakeKind(0.7, fail=True))
    with pytest.raises(RuntimeError):
        services.retrain("fake")
    run = RetrainRun.objects.get(kind="fake")
    assert run.status == "failed" and "training exploded" in run.error
    fake_kind(_FakeKind(0.7))
    assert services.retrain("fake").promoted


def test_rollback_restores_the_previous_version(fake_kind):
    fake_kind(_FakeKind(0.6))
    first = services.retrain("fake").version
    fake_kind(_FakeKind(0.8))
    second = services.retrain("fake").version
    assert second.status == "active"
    restored = services.rollback("fake")
    assert restored.pk == first.pk
    second.refresh_from_db()
    assert second.status == "retired"


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model kind"):
        services.retrain("nonsense")


def test_retrain_task_reports_a_busy_lock(fake_kind):
    from suggestions import tasks

    fake_kind(_FakeKind(0.7))
    RetrainRun.objects.create(kind="fake")
    assert "already running" in tasks.retrain.delay("fake").get()["skipped"]


# -- the suggestion ranker ---------------------------------------------------------------


def _history(seed: int = 0, days: int = 40) -> None:
    """Shoppers searching a few games; 'gears 3' rises in the last weeks while
    'gears of war' fades: recency predicts tomorrow better than the count does."""
    rng = random.Random(seed)
    start = timezone.now() - timedelta(days=days)
    rows = []
    queries = ["gears of war", "gears 3", "gears of war 2", "gta 4", "gta 5", "gran turismo", "halo reach",
               "halo 3", "halo wars", "madden 12"]
    for day in range(days):
        trend = day / days
        for i in range(40):
            weights = [3 * (1 - trend), 0.2 + 3 * trend, 1, 1.5 * (1 - trend), 0.2 + 2 * trend, 1, 2, 1, 0.5, 1]
            query = rng.choices(queries, weights)[0]
            rows.append(ImportedSearch(user=f"s{day}-{i}", query=query,
                                       time=start + timedelta(days=day, minutes=i)))
    import_searches(rows)


def test_ranker_retrain_end_to_end_registers_a_version_with_its_gate(settings, tmp_path,
                                                                     django_capture_on_commit_callbacks):
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    _history()
    services.build_suggestions(include_catalog=False)
    with django_capture_on_commit_callbacks(execute=True):
        report = services.retrain("suggestion_ranker")
    version = report.version
    assert version.kind == "suggestion_ranker"
    assert version.status == "active"
    assert version.metrics["heldout_units"] == report.gate.n > 0
    assert Path(version.artefact_uri, "ranker.txt").exists()
    assert version.training_window_end < version.heldout_window_start
    # The history's trend is learnable: recency predicts the held-out days better
    # than the decayed count alone, so the gate promotes and the order is served.
    assert report.promoted, report.gate.reason
    assert report.gate.ci_low > 0
    ranked = RankedPrefix.objects.get(prefix="gea", model_version=version.version)
    served = [i.text for i in services.suggest("gea", limit=3).items]
    assert served == [t for t, _s in ranked.texts][:3]
    # A challenger trained on shuffled labels has learnt nothing: rejected, the
    # promoted version stays active and its order keeps being served.
    broken = services.retrain("suggestion_ranker", options={"shuffle_labels": True})
    assert not broken.promoted and broken.version.status == "rejected"
    assert broken.gate.difference < 0
    version.refresh_from_db()
    assert version.status == "active"
    assert RankedPrefix.objects.filter(model_version=version.version).exists()


def test_ranker_model_round_trip_and_feature_check(tmp_path):
    from suggestions.ml.suggestion_ranker import (
        FEATURE_NAMES,
        CandidateStats,
        RankerModel,
        Search,
        TrainParams,
        training_groups,
    )

    now = timezone.now()
    rng = random.Random(3)
    searches = [Search(rng.choice(["abc", "abd", "abe", "abf"]), f"u{i}", now - timedelta(hours=i))
                for i in range(600)]
    x, y, groups = training_groups(searches, lambda part: CandidateStats(part, {}, 2), TrainParams())
    assert x.shape == (len(y), len(FEATURE_NAMES)) and sum(groups) == len(y)
    assert all(int(y[sum(groups[:i]):sum(groups[:i + 1])].sum()) == 1 for i in range(len(groups)))
    model = RankerModel.fit(x, y, groups, TrainParams(n_estimators=20, min_child_samples=5))
    model.save(tmp_path / "m")
    loaded = RankerModel.load(tmp_path / "m")
    assert np.allclose(loaded.scores(x[:20]), model.scores(x[:20]))
    meta = tmp_path / "m" / "meta.json"
    meta.write_text(meta.read_text().replace('"first_stage_rank"', '"something_else"'))
    with pytest.raises(ValueError, match="other features"):
        RankerModel.load(tmp_path / "m")


def test_suggest_serves_the_ranked_order_and_only_what_is_approved_now():
    for text, weight in (("gears of war", 9.0), ("gears 3", 5.0), ("gears of war 2", 1.0)):
        Suggestion.objects.create(text=text, source="history", weight=weight)
    services.publish_suggestions()
    assert [i.text for i in services.suggest("gea", limit=5).items] == ["gears of war", "gears 3", "gears of war 2"]
    RankedPrefix.objects.create(prefix="gea", model_version="v1", texts=[
        ["gears of war 2", "history"], ["gears 3", "history"], ["gears of war", "history"]])
    services.invalidate_cache()
    assert [i.text for i in services.suggest("gea", limit=5).items] == ["gears of war 2", "gears 3", "gears of war"]
    # Rejected since the table was computed: never served.
    services.set_suggestion_status(Suggestion.objects.filter(text="gears 3"), SuggestionStatus.REJECTED)
    services.publish_suggestions()
    assert [i.text for i in services.suggest("gea", limit=5).items] == ["gears of war 2", "gears of war"]


def test_ranked_answers_read_the_orders_and_the_approved_set_once_per_cache_version():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for text in ("gears of war", "gears 3", "halo 3", "halo reach"):
        Suggestion.objects.create(text=text, source="history", weight=1.0)
    services.publish_suggestions()
    RankedPrefix.objects.create(prefix="gea", model_version="v1", texts=[["gears 3", "history"],
                                                                        ["gears of war", "history"]])
    RankedPrefix.objects.create(prefix="hal", model_version="v1", texts=[["halo reach", "history"],
                                                                        ["halo 3", "history"]])
    services.invalidate_cache()
    assert [i.text for i in services.suggest("gea", limit=5).items][:2] == ["gears 3", "gears of war"]

    with CaptureQueriesContext(connection) as queries:
        items = [i.text for i in services.suggest("hal", limit=5).items]

    assert items[:2] == ["halo reach", "halo 3"]
    # The approved texts and the precomputed orders were read with the first miss of this version.
    assert [q["sql"] for q in queries.captured_queries] == []


def test_without_an_active_ranker_the_table_is_emptied():
    RankedPrefix.objects.create(prefix="ab", model_version="old", texts=[["abc", "history"]])
    assert services.refresh_rankings() == 0
    assert not RankedPrefix.objects.exists()
    assert not ModelVersion.objects.filter(kind="suggestion_ranker").exists()


def test_the_demo_beat_schedule_retrains_only_registered_kinds(settings):
    from shop_search.celery import app

    retrains = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "suggestions.ml.retrain"]
    assert retrains, "the demo retrains nightly"
    for entry in retrains:
        assert entry["args"][0] in learning.KINDS
    app.loader.import_default_modules()
    assert {"suggestions.ml.retrain", "suggestions.ml.rank_prefixes"} <= set(app.tasks)


def test_the_retrain_command_runs_here_or_sends_the_task(fake_kind, django_capture_on_commit_callbacks):
    from django.core.management import CommandError, call_command

    fake_kind(_FakeKind(0.7))
    with pytest.raises(CommandError, match="not JSON"):
        call_command("suggestions_retrain", "fake", "--options", "{oops")
    with pytest.raises(CommandError, match="Unknown model kind"):
        call_command("suggestions_retrain", "nonsense")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("suggestions_retrain", "fake", "--in-worker", stdout=open(os.devnull, "w"))
    assert callbacks  # the task is sent once the transaction commits (and runs eagerly here)
    assert ModelVersion.objects.get(kind="fake").status == "active"


def test_a_young_shop_holds_out_its_newest_fifth():
    now = timezone.now()
    import_searches([ImportedSearch(user=f"u{i}", query="gears 3", time=now - timedelta(minutes=i))
                     for i in range(50)])
    snapshot = learning.KINDS["suggestion_ranker"].snapshot(log=lambda _l: None, options={})
    assert (len(snapshot.train["searches"]), len(snapshot.heldout)) == (40, 10)
    assert max(s.time for s in snapshot.train["searches"]) <= min(s.time for s in snapshot.heldout)
