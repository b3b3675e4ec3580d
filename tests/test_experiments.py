"""Online experiments: sticky assignment, team-draft interleaving, per-arm
metrics and the sample-ratio check, serving each arm's order, the events'
arms, the lifecycle and the admin."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from suggestions import experiment_stats as st
from suggestions import experiments, services
from suggestions.history import ImportedSearch, actor_hash, import_searches
from suggestions.models import (
    Experiment,
    ExperimentEvent,
    ExperimentRanking,
    ExperimentStatus,
    ModelVersion,
    Suggestion,
)

pytestmark = pytest.mark.django_db

ORDER_A = ["gears of war", "gears 3", "gears of war 2", "gears 2"]
ORDER_B = ["gears of war 2", "gears 2", "gears 3", "gears of war"]


# -- statistics (no database) ---------------------------------------------------------------


@pytest.mark.django_db(False)
def test_assignment_is_sticky_split_by_weight_and_independent_across_experiments():
    actors = [f"shopper-{i}" for i in range(20_000)]
    arms = [st.choose_arm(st.assignment_point(7, a), [("control", 0.7), ("treatment", 0.3)]) for a in actors]
    again = [st.choose_arm(st.assignment_point(7, a), [("control", 0.7), ("treatment", 0.3)]) for a in actors]
    assert arms == again
    share = arms.count("treatment") / len(actors)
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(actors))
    # Another experiment splits the same shoppers independently of this one.
    other = [st.assignment_point(8, a) < 0.5 for a in actors]
    both = sum(1 for arm, o in zip(arms, other, strict=True) if arm == "treatment" and o) / len(actors)
    assert abs(both - 0.15) < 0.015
    with pytest.raises(ValueError, match="positive weight"):
        st.choose_arm(0.5, [("control", 0.0), ("treatment", 0.0)])


@pytest.mark.django_db(False)
def test_team_draft_keeps_both_teams_balanced_in_their_own_order():
    rng = random.Random(5)
    pool = [f"q{i}" for i in range(30)]
    for trial in range(300):
        a = rng.sample(pool, rng.randint(0, 12))
        b = rng.sample(pool, rng.randint(0, 12))
        merged, teams = st.team_draft(a, b, limit=10, seed=trial)
        assert len(merged) == len(set(merged)) == min(10, len(set(a) | set(b)))
        assert set(teams) == set(merged) and set(teams.values()) <= {"control", "treatment"}
        counts = {"control": 0, "treatment": 0}
        for text in merged:
            counts[teams[text]] += 1
            exhausted = not (set(a) - set(teams)) or not (set(b) - set(teams))
            # A team is never more than one pick ahead, unless the other has nothing new left.
            assert abs(counts["control"] - counts["treatment"]) <= 1 or exhausted
        for team, ranking in (("control", a), ("treatment", b)):
            picked = [t for t in merged if teams[t] == team]
            assert [ranking.index(t) for t in picked] == sorted(ranking.index(t) for t in picked)
            # Each pick is the team's best result not already in the list.
            for text in picked:
                before = merged[:merged.index(text)]
                assert text == next(t for t in ranking if t not in before)
        assert st.team_draft(a, b, limit=10, seed=trial) == (merged, teams)
    # Identical rankings interleave to themselves; the first pick is a fair coin.
    assert st.team_draft(ORDER_A, ORDER_A, limit=4, seed=1)[0] == ORDER_A
    firsts = [st.team_draft(["x"], ["y"], limit=2, seed=s)[0][0] == "x" for s in range(2000)]
    assert 0.45 < sum(firsts) / len(firsts) < 0.55


@pytest.mark.django_db(False)
def test_credit_counts_clicks_per_team_and_names_the_winner():
    teams = {"a1": "control", "b1": "treatment", "b2": "treatment"}
    assert st.credit(teams, ["b1", "b2"]) == (0, 2, "treatment")
    assert st.credit(teams, ["a1"]) == (1, 0, "control")
    assert st.credit(teams, ["a1", "b1"]) == (1, 1, "tie")
    assert st.credit(teams, ["recent search"]) == (0, 0, "")


@pytest.mark.django_db(False)
def test_sample_ratio_check_flags_a_broken_split_only():
    assert st.sample_ratio_check({"control": 5500, "treatment": 4500}, {"control": 0.5, "treatment": 0.5}).mismatch
    fine = st.sample_ratio_check({"control": 5030, "treatment": 4970}, {"control": 0.5, "treatment": 0.5})
    assert not fine.mismatch and fine.p_value > 0.5
    skewed = st.sample_ratio_check({"control": 9000, "treatment": 1000}, {"control": 0.9, "treatment": 0.1})
    assert not skewed.mismatch and skewed.expected == {"control": 9000.0, "treatment": 1000.0}
    with pytest.raises(ValueError, match="without a weight"):
        st.sample_ratio_check({"control": 1, "other": 2}, {"control": 1.0})


@pytest.mark.django_db(False)
def test_ratio_estimate_is_the_delta_method_over_shoppers():
    clicks, lists = [1, 0, 3, 2, 0], [2, 1, 4, 2, 3]
    got = st.ratio_estimate(clicks, lists)
    ratio = 6 / 12
    # By hand: Var(R) ≈ (s_x² − 2R s_xd + R² s_d²) / (n d̄²), with sample (co)variances.
    x, d, n = np.array(clicks, float), np.array(lists, float), 5
    sxx, sdd = x.var(ddof=1), d.var(ddof=1)
    sxd = ((x - x.mean()) * (d - d.mean())).sum() / (n - 1)
    se = math.sqrt((sxx - 2 * ratio * sxd + ratio**2 * sdd) / (n * d.mean() ** 2))
    assert got.value == pytest.approx(ratio)
    assert (got.low, got.high) == pytest.approx((ratio - 1.959964 * se, ratio + 1.959964 * se), rel=1e-5)
    assert st.sign_test(60, 40) == pytest.approx(0.0569, abs=1e-3)


# -- fixtures -------------------------------------------------------------------------------


def _versions() -> tuple[ModelVersion, ModelVersion]:
    a = ModelVersion.objects.create(kind="suggestion_ranker", version="v-a", artefact_uri="-", status="active")
    b = ModelVersion.objects.create(kind="suggestion_ranker", version="v-b", artefact_uri="-")
    return a, b


def _running(method: str = "ab", share: float = 0.5) -> Experiment:
    """A running, prepared experiment whose arms order 'gea' as ORDER_A / ORDER_B."""
    for i, text in enumerate(ORDER_A):
        Suggestion.objects.create(text=text, source="history", weight=10.0 - i)
    services.publish_suggestions()
    control, treatment = _versions()
    experiment = Experiment.objects.create(name="ranker v-b", control=control, treatment=treatment, method=method,
                                           treatment_share=share, status=ExperimentStatus.RUNNING,
                                           started_at=timezone.now(), prepared_at=timezone.now())
    for arm, order in (("control", ORDER_A), ("treatment", ORDER_B)):
        ExperimentRanking.objects.create(experiment=experiment, arm=arm, prefix="gea",
                                         texts=[[t, "history"] for t in order])
    services.invalidate_cache()
    return experiment


def _shopper_in(experiment: Experiment, arm: str, start: int = 0) -> str:
    for i in range(start, start + 1000):
        key = f"shopper:{i}"
        if experiments.assign(experiment, session_key=key) == arm:
            return key
    raise AssertionError("no shopper found")


def _texts(prefix: str, **actor) -> list[str]:
    return [i.text for i in services.suggest(prefix, limit=4, **actor).items]


# -- serving and events ---------------------------------------------------------------------


def test_each_arm_is_served_its_own_order_and_cached_apart(django_capture_on_commit_callbacks):
    experiment = _running()
    control, treatment = _shopper_in(experiment, "control"), _shopper_in(experiment, "treatment")
    assert _texts("gea", session_key=control) == ORDER_A
    assert _texts("gea", session_key=treatment) == ORDER_B  # not the control's cached answer
    assert _texts("gea", session_key=control) == ORDER_A
    # Nobody (a request without a shopper cookie) is in no experiment: the
    # engine's popularity order, which here is ORDER_A's weights.
    assert _texts("gea") == ORDER_A
    # Moderation applies inside an arm too.
    services.set_suggestion_status(Suggestion.objects.filter(text="gears 2"), "rejected")
    services.publish_suggestions()
    assert _texts("gea", session_key=treatment) == ["gears of war 2", "gears 3", "gears of war"]
    with django_capture_on_commit_callbacks(execute=True):
        services.stop_experiment(experiment)
    assert _texts("gea", session_key=treatment) == ORDER_A[:3]
    assert not ExperimentRanking.objects.exists()


def test_interleaving_serves_the_team_draft_and_credits_the_click_to_its_team():
    experiment = _running(method="interleaving")
    key = "shopper:42"
    served = _texts("gea", session_key=key)
    arm = experiments.serving_arm(session_key=key)
    merged, teams = st.team_draft(ORDER_A, ORDER_B, limit=10,
                                  seed=st.interleaving_seed(experiment.pk, arm.slot, "gea"))
    assert served == merged and sorted(served) == sorted(ORDER_A)
    services.record_events([
        {"type": "impression", "request_id": "0" * 32, "prefix": "gea", "suggestions": served},
        {"type": "suggestion_click", "request_id": "0" * 32, "prefix": "gea", "suggestion": served[1], "position": 1},
    ], session_key=key)
    impression = ExperimentEvent.objects.get(kind="impression")
    assert impression.arm == "interleaved" and impression.teams == teams
    assert ExperimentEvent.objects.get(kind="click").team == teams[served[1]]
    assert impression.actor_hash == actor_hash(session_key=key)


def test_events_record_the_shoppers_arm_and_nobody_is_recorded_nowhere():
    experiment = _running(share=0.3)
    treatment = _shopper_in(experiment, "treatment")
    event = {"type": "impression", "request_id": "1" * 32, "prefix": "gea", "suggestions": ORDER_B}
    services.record_events([event], session_key=treatment)
    services.record_events([{**event, "request_id": "2" * 32}])  # no shopper
    assert [(a, r.hex) for a, r in ExperimentEvent.objects.values_list("arm", "request_id")] == [("treatment", "1" * 32)]
    # A draft or stopped experiment records nothing.
    services.stop_experiment(experiment)
    services.record_events([{**event, "request_id": "3" * 32}], session_key=treatment)
    assert ExperimentEvent.objects.count() == 1


def test_erasure_and_retention_reach_experiment_events():
    _running()
    event = {"type": "impression", "request_id": "1" * 32, "prefix": "gea", "suggestions": ORDER_A}
    services.record_events([event], session_key="shopper:a")
    services.record_events([{**event, "request_id": "2" * 32}], session_key="shopper:b")
    assert ExperimentEvent.objects.count() == 2
    services.erase_history(session_key="shopper:a")
    assert list(ExperimentEvent.objects.values_list("actor_hash", flat=True)) == [actor_hash(session_key="shopper:b")]
    ExperimentEvent.objects.update(created_at=timezone.now() - timedelta(days=10_000))
    assert services.garbage_collect()["experimentevent"] == 1
    assert not ExperimentEvent.objects.exists()


def _report(experiment: Experiment, shopper: str, request: int, clicked_position: int | None) -> None:
    rid = f"{request:032x}"
    events = [{"type": "impression", "request_id": rid, "prefix": "gea", "suggestions": ORDER_A}]
    if clicked_position is not None:
        events.append({"type": "suggestion_click", "request_id": rid, "prefix": "gea",
                       "suggestion": ORDER_A[clicked_position], "position": clicked_position})
    services.record_events(events, session_key=shopper)


def test_per_arm_metrics_equal_a_hand_computation():
    experiment = _running()
    c1, c2 = _shopper_in(experiment, "control"), _shopper_in(experiment, "control", 500)
    t1 = _shopper_in(experiment, "treatment")
    # Control: c1 shown 3 lists (clicks at 0 and 2), c2 one list (no click).
    for n, pos in enumerate([0, None, 2]):
        _report(experiment, c1, n, pos)
    _report(experiment, c2, 10, None)
    # Treatment: t1 shown 2 lists, clicks at 1 and 0.
    _report(experiment, t1, 20, 1)
    _report(experiment, t1, 21, 0)
    results = services.experiment_results(experiment)
    control, treatment = results.arms
    assert (control.shoppers, control.impressions, control.clicked) == (2, 4, 2)
    assert control.ctr.value == pytest.approx(2 / 4)
    assert control.mrr.value == pytest.approx((1 + 1 / 3) / 4)
    assert (treatment.shoppers, treatment.impressions, treatment.clicked) == (1, 2, 2)
    assert treatment.mrr.value == pytest.approx((1 / 2 + 1) / 2)
    assert results.mrr_difference.value == pytest.approx(0.75 - (4 / 3) / 4)
    # One shopper has no spread: no finite interval, so no verdict of significance.
    assert not results.mrr_difference.significant
    assert any("Too early" in s for s in results.sentences)


def test_results_flag_a_sample_ratio_mismatch():
    experiment = _running()
    ExperimentEvent.objects.bulk_create(
        [ExperimentEvent(experiment=experiment, arm="control", kind="impression", request_id=f"{i:032x}",
                         actor_hash=f"c{i}") for i in range(700)]
        + [ExperimentEvent(experiment=experiment, arm="treatment", kind="impression", request_id=f"{1000 + i:032x}",
                           actor_hash=f"t{i}") for i in range(500)])
    results = services.experiment_results(experiment)
    assert results.sample_ratio.mismatch
    assert results.warnings and "Sample ratio mismatch" in results.warnings[0]
    # 520 / 480 is chance at 50/50.
    ExperimentEvent.objects.filter(arm="control", actor_hash__in=[f"c{i}" for i in range(520, 700)]).delete()
    ExperimentEvent.objects.filter(arm="treatment", actor_hash__in=[f"t{i}" for i in range(480, 500)]).delete()
    assert not services.experiment_results(experiment).warnings


def test_interleaving_results_count_wins_and_run_the_sign_test():
    experiment = _running(method="interleaving")
    rows = []
    for i in range(150):
        rid = f"{i:032x}"
        rows.append(ExperimentEvent(experiment=experiment, arm="interleaved", kind="impression", request_id=rid,
                                    actor_hash=f"s{i}"))
        team = "treatment" if i < 100 else ("control" if i < 140 else "")
        rows.append(ExperimentEvent(experiment=experiment, arm="interleaved", kind="click", request_id=rid,
                                    actor_hash=f"s{i}", position=0, team=team))
    ExperimentEvent.objects.bulk_create(rows)
    result = services.experiment_results(experiment).interleaving
    assert (result.lists, result.treatment_wins, result.control_wins, result.ties) == (150, 100, 40, 0)
    assert result.p_value == pytest.approx(st.sign_test(100, 40)) and result.p_value < 0.001
    assert result.low < 100 / 140 < result.high


# -- lifecycle ------------------------------------------------------------------------------


def _history(days: int = 30) -> None:
    rng = random.Random(1)
    start = timezone.now() - timedelta(days=days)
    queries = ["gears of war", "gears 3", "gears of war 2", "gta 4", "gta 5", "halo reach", "halo 3"]
    import_searches([ImportedSearch(user=f"u{d}-{i}", query=rng.choice(queries), time=start + timedelta(days=d, minutes=i))
                     for d in range(days) for i in range(20)])
    services.build_suggestions(include_catalog=False)


def _trained_version(tmp_path, label: str) -> ModelVersion:
    from suggestions.ml.suggestion_ranker import (
        CandidateStats,
        RankerModel,
        Search,
        TrainParams,
        training_groups,
    )

    now = timezone.now()
    rng = random.Random(3)
    searches = [Search(rng.choice(["gears 3", "gears of war", "gears 2"]), f"u{i}", now - timedelta(hours=i))
                for i in range(400)]
    x, y, groups = training_groups(searches, lambda part: CandidateStats(part, {}, 2), TrainParams())
    RankerModel.fit(x, y, groups, TrainParams(n_estimators=10, min_child_samples=5)).save(tmp_path / label)
    return ModelVersion.objects.create(kind="suggestion_ranker", version=label, artefact_uri=str(tmp_path / label))


def test_start_prepares_both_arms_then_serves_them_and_stop_ends_it(tmp_path, django_capture_on_commit_callbacks):
    _history()
    treatment = _trained_version(tmp_path, "trained")
    experiment = Experiment.objects.create(name="trained vs popularity", control=None, treatment=treatment)
    assert experiments.serving_arm(session_key="shopper:1") is None
    with django_capture_on_commit_callbacks(execute=True):
        services.start_experiment(experiment)
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.prepared_at is not None
    control_order = ExperimentRanking.objects.get(experiment=experiment, arm="control", prefix="g").texts
    assert [t for t, _s in control_order][:3] == [i.text for i in services.suggest("g", limit=3).items]
    assert ExperimentRanking.objects.filter(experiment=experiment, arm="treatment", prefix="g").exists()
    key = _shopper_in(experiment, "treatment")
    treatment_order = ExperimentRanking.objects.get(experiment=experiment, arm="treatment", prefix="g").texts
    assert _texts("g", session_key=key) == [t for t, _s in treatment_order][:4]
    # One running experiment per kind; only drafts start; only running ones stop.
    second = Experiment.objects.create(name="another", treatment=treatment)
    with pytest.raises(ValueError, match="already running"):
        services.start_experiment(second)
    with pytest.raises(ValueError, match="Only a draft"):
        services.start_experiment(experiment)
    services.stop_experiment(experiment)
    with pytest.raises(ValueError, match="Only a running"):
        services.stop_experiment(experiment)
    assert services.prepare_experiment(experiment.pk) == 0


def test_versions_that_do_not_fit_are_refused_with_the_reason():
    control, treatment = _versions()
    other = ModelVersion.objects.create(kind="understanding", version="u1", artefact_uri="-")
    cases = [
        (dict(control=control, treatment=control), "same version"),
        (dict(control=control, treatment=other), "understanding version"),
        (dict(control=control, treatment=treatment, treatment_share=1.0), "between 0.01 and 0.99"),
        (dict(control=None, treatment=other, kind="understanding"), "cannot be served yet"),
    ]
    for fields, message in cases:
        experiment = Experiment.objects.create(name="bad", **fields)
        with pytest.raises(ValueError, match=message):
            services.start_experiment(experiment)
        experiment.refresh_from_db()
        assert experiment.status == "draft"


# -- admin ----------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    user = User.objects.create_user("merch", password="pw", is_staff=True)
    client.force_login(user)
    return user


def _grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def test_admin_creates_starts_and_shows_results(admin_client, django_capture_on_commit_callbacks):
    control, treatment = _versions()
    add = reverse("admin:shop_suggestions_experiment_add")
    response = admin_client.post(add, {"name": "v-b", "kind": "suggestion_ranker", "method": "ab",
                                       "control": control.pk, "treatment": treatment.pk, "treatment_share": "1.5"})
    assert response.status_code == 200 and "between 0.01 and 0.99" in response.content.decode()
    response = admin_client.post(add, {"name": "v-b", "kind": "suggestion_ranker", "method": "ab",
                                       "control": control.pk, "treatment": treatment.pk, "treatment_share": "0.5"})
    assert response.status_code == 302
    experiment = Experiment.objects.get()
    changelist = reverse("admin:shop_suggestions_experiment_changelist")
    # Preparing loads the rankers (a worker's job): captured here, not run.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(changelist, {"action": "start", "_selected_action": [experiment.pk]}, follow=True)
    assert "Started 1 experiment" in response.content.decode() and callbacks
    experiment.refresh_from_db()
    assert experiment.status == "running"
    response = admin_client.get(reverse("admin:shop_suggestions_experiment_results", args=[experiment.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "waiting for the workers" in page and "Too early to tell" in page and "version v-b" in page
    # Starting it again says why it cannot.
    response = admin_client.post(changelist, {"action": "start", "_selected_action": [experiment.pk]}, follow=True)
    assert "Only a draft experiment can be started" in response.content.decode()
    response = admin_client.post(changelist, {"action": "stop", "_selected_action": [experiment.pk]}, follow=True)
    assert "Stopped 1 experiment" in response.content.decode()


def test_results_need_the_view_permission_and_actions_the_change_one(client, staff):
    experiment = _running()
    results = reverse("admin:shop_suggestions_experiment_results", args=[experiment.pk])
    assert client.get(results).status_code == 403
    _grant(staff, "view_experiment")
    assert client.get(results).status_code == 200
    changelist = reverse("admin:shop_suggestions_experiment_changelist")
    client.post(changelist, {"action": "stop", "_selected_action": [experiment.pk]})
    experiment.refresh_from_db()
    assert experiment.status == "running"
    _grant(staff, "change_experiment")
    client.post(changelist, {"action": "stop", "_selected_action": [experiment.pk]})
    experiment.refresh_from_db()
    assert experiment.status == "stopped"
    assert client.get(reverse("admin:shop_suggestions_experiment_results", args=[99999])).status_code == 403
