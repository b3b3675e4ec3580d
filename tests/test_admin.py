"""Tests of the Django admin: log admins are read-only, moderation actions work."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from suggestions import signals
from suggestions.models import (
    BlockedTerm,
    ModelVersion,
    ModelVersionStatus,
    ProductClick,
    QueryDailyStat,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
)
from tests.factories_suggestions import (
    BlockedTermFactory,
    ModelVersionFactory,
    ProductClickFactory,
    QueryDailyStatFactory,
    SearchEventFactory,
    SuggestionClickFactory,
    SuggestionFactory,
    SuggestionImpressionFactory,
)

pytestmark = pytest.mark.django_db

APP = "shop_suggestions"
LOG_MODELS = [SearchEvent, SuggestionImpression, SuggestionClick, ProductClick, QueryDailyStat]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{APP}_{model._meta.model_name}_{view}", args=args)


def changelist(model) -> str:
    return url(model, "changelist")


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def changed_signals():
    received: list[type] = []

    def receiver(sender, **kwargs):
        received.append(sender)

    signals.suggestions_changed.connect(receiver, dispatch_uid="test-admin-counter")
    yield received
    signals.suggestions_changed.disconnect(dispatch_uid="test-admin-counter")


@pytest.fixture
def logs():
    return {
        SearchEvent: SearchEventFactory(query="Nike Air", normalized_query="nike air"),
        SuggestionImpression: SuggestionImpressionFactory(),
        SuggestionClick: SuggestionClickFactory(),
        ProductClick: ProductClickFactory(),
        QueryDailyStat: QueryDailyStatFactory(normalized_query="nike air"),
    }


# --- changelists --------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [*LOG_MODELS, Suggestion, BlockedTerm, ModelVersion],
    ids=lambda m: m.__name__,
)
def test_every_changelist_renders(admin_client, logs, model):
    SuggestionFactory(text="nike air", pinned_prefix="nike")
    BlockedTermFactory(pattern="nike", kind="word")
    ModelVersionFactory()
    response = admin_client.get(changelist(model))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_changelist_search_and_filters(admin_client, logs):
    SuggestionFactory(text="nike air", pinned_prefix="nike")
    SuggestionFactory(text="puma")
    response = admin_client.get(changelist(Suggestion), {"q": "nike"})
    assert [s.text for s in response.context["cl"].result_list] == ["nike air"]
    response = admin_client.get(changelist(Suggestion), {"pinned": "no"})
    assert [s.text for s in response.context["cl"].result_list] == ["puma"]
    response = admin_client.get(changelist(SearchEvent), {"q": "nike", "origin": "typed"})
    assert response.context["cl"].result_count == 1


# --- read-only logs -----------------------------------------------------------------


@pytest.mark.parametrize("model", LOG_MODELS, ids=lambda m: m.__name__)
def test_log_admins_refuse_add(admin_client, logs, model):
    assert admin_client.get(url(model, "add")).status_code == 403
    response = admin_client.get(changelist(model))
    assert url(model, "add") not in response.content.decode()


@pytest.mark.parametrize("model", LOG_MODELS, ids=lambda m: m.__name__)
def test_log_admins_refuse_change(admin_client, logs, model):
    obj = logs[model]
    change_url = url(model, "change", obj.pk)
    # Viewing is allowed, saving is not.
    assert admin_client.get(change_url).status_code == 200
    assert admin_client.post(change_url, {}).status_code == 403


def test_search_event_change_post_leaves_row_untouched(admin_client, logs):
    event = logs[SearchEvent]
    response = admin_client.post(
        url(SearchEvent, "change", event.pk),
        {"query": "edited", "normalized_query": "edited", "origin": "typed"},
    )
    assert response.status_code == 403
    assert SearchEvent.objects.get(pk=event.pk).query == "Nike Air"


def test_log_delete_only_for_superusers(client, admin_client, django_user_model, logs):
    event = logs[SearchEvent]
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label=APP, codename__endswith="searchevent")
    )
    client.force_login(staff)
    assert client.post(url(SearchEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    assert SearchEvent.objects.filter(pk=event.pk).exists()

    response = admin_client.post(url(SearchEvent, "delete", event.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not SearchEvent.objects.filter(pk=event.pk).exists()


# --- suggestion actions -------------------------------------------------------------


def post_action(client, action: str, objs, **extra):
    data = {"action": action, "_selected_action": [o.pk for o in objs], **extra}
    return client.post(changelist(Suggestion), data)


def status_of(*objs) -> list[str]:
    return [Suggestion.objects.get(pk=o.pk).status for o in objs]


def test_approve_and_reject_actions(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    a = SuggestionFactory(status="pending")
    b = SuggestionFactory(status="pending")
    other = SuggestionFactory(status="pending")

    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "approve", [a, b])
    assert response.status_code == 302
    assert status_of(a, b, other) == ["approved", "approved", "pending"]
    assert ("success", "2 suggestions approved.") in messages_of(response)
    assert changed_signals == [Suggestion]

    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "reject", [a])
    assert status_of(a, b, other) == ["rejected", "approved", "pending"]
    assert ("success", "1 suggestion rejected.") in messages_of(response)
    assert changed_signals == [Suggestion, Suggestion]


def test_block_action_adds_blocked_terms(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    a = SuggestionFactory(text="fake nike")
    b = SuggestionFactory(text="nike air")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "block", [a])
    assert response.status_code == 302
    assert status_of(a, b) == ["blocked", "approved"]
    assert list(BlockedTerm.objects.values_list("pattern", flat=True)) == ["fake nike"]
    assert changed_signals == [Suggestion]


def test_pin_action_shows_intermediate_page_first(admin_client):
    a = SuggestionFactory(text="nike air", status="pending")
    b = SuggestionFactory(text="nike air max", status="pending")
    response = post_action(admin_client, "pin_for_prefix", [a, b])
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == (
        "admin/shop_suggestions/suggestion/pin_prefix.html"
    )
    html = response.content.decode()
    assert 'name="prefix"' in html
    assert 'name="action" value="pin_for_prefix"' in html
    assert f'name="_selected_action" value="{a.pk}"' in html
    assert f'name="_selected_action" value="{b.pk}"' in html
    # Nothing changes until the prefix is confirmed.
    assert set(Suggestion.objects.values_list("pinned_prefix", "status")) == {("", "pending")}


def test_pin_action_with_prefix_pins_and_approves(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    a = SuggestionFactory(text="nike air", status="pending")
    b = SuggestionFactory(text="nike air max", status="rejected")
    other = SuggestionFactory(text="nike shoes", status="pending")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "pin_for_prefix", [a, b], apply="yes", prefix=" Nike ")
    assert response.status_code == 302
    rows = {s.text: (s.pinned_prefix, s.status) for s in Suggestion.objects.all()}
    assert rows == {
        "nike air": ("nike", "approved"),
        "nike air max": ("nike", "approved"),
        "nike shoes": ("", "pending"),
    }
    assert ("success", "2 suggestions pinned for “nike”.") in messages_of(response)
    assert changed_signals == [Suggestion]
    assert other.pk not in Suggestion.objects.exclude(pinned_prefix="").values_list("pk", flat=True)


def test_pin_action_with_non_matching_prefix_shows_error(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    a = SuggestionFactory(text="nike air", status="pending")
    b = SuggestionFactory(text="adidas", status="pending")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "pin_for_prefix", [a, b], apply="yes", prefix="ad")
    assert response.status_code == 200  # the form again, to correct the prefix
    errors = [text for level, text in messages_of(response) if level == "error"]
    assert len(errors) == 1 and "nike air" in errors[0]
    assert "nike air" in response.content.decode()
    assert set(Suggestion.objects.values_list("pinned_prefix", "status")) == {("", "pending")}
    assert changed_signals == []


def test_pin_action_with_empty_prefix_shows_error(admin_client):
    a = SuggestionFactory(text="nike air", status="pending")
    response = post_action(admin_client, "pin_for_prefix", [a], apply="yes", prefix="?!")
    assert response.status_code == 200
    assert any(level == "error" for level, _text in messages_of(response))
    assert Suggestion.objects.get(pk=a.pk).pinned_prefix == ""


def test_unpin_action(admin_client, changed_signals, django_capture_on_commit_callbacks):
    a = SuggestionFactory(text="nike air", pinned_prefix="nike")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "unpin", [a])
    assert Suggestion.objects.get(pk=a.pk).pinned_prefix == ""
    assert ("success", "1 suggestion unpinned.") in messages_of(response)
    assert changed_signals == [Suggestion]


# --- suggestion change form ---------------------------------------------------------


def suggestion_form(**overrides) -> dict:
    data = {
        "text": "Nike  AIR",
        "source": "manual",
        "status": "approved",
        "weight": "1.5",
        "pinned_prefix": "",
    }
    data.update(overrides)
    return data


def test_add_form_normalises_and_signals(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(Suggestion, "add"), suggestion_form(pinned_prefix="NIKE"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    s = Suggestion.objects.get()
    assert (s.text, s.pinned_prefix) == ("nike air", "nike")
    assert changed_signals == [Suggestion]


def test_add_form_rejects_duplicate_after_normalisation(admin_client):
    SuggestionFactory(text="nike air")
    response = admin_client.post(url(Suggestion, "add"), suggestion_form())
    assert response.status_code == 200
    assert "text" in response.context["adminform"].form.errors
    assert Suggestion.objects.count() == 1


def test_change_form_rejects_prefix_the_text_does_not_start_with(admin_client):
    s = SuggestionFactory(text="nike air")
    response = admin_client.post(
        url(Suggestion, "change", s.pk), suggestion_form(pinned_prefix="ad")
    )
    assert response.status_code == 200
    assert "pinned_prefix" in response.context["adminform"].form.errors
    assert Suggestion.objects.get(pk=s.pk).pinned_prefix == ""


def test_change_form_blocking_records_term(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    s = SuggestionFactory(text="nike air")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url(Suggestion, "change", s.pk), suggestion_form(status="blocked")
        )
    assert response.status_code == 302
    assert status_of(s) == ["blocked"]
    assert BlockedTerm.objects.filter(pattern="nike air").exists()
    assert changed_signals == [Suggestion]


def test_delete_suggestion_signals(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    s = SuggestionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(Suggestion, "delete", s.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Suggestion.objects.exists()
    assert changed_signals == [Suggestion]


# --- blocked terms ------------------------------------------------------------------


def test_blocked_term_invalid_regex_is_a_form_error(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url(BlockedTerm, "add"), {"pattern": "nike(", "kind": "regex", "note": ""}
        )
    assert response.status_code == 200
    assert "pattern" in response.context["adminform"].form.errors
    assert not BlockedTerm.objects.exists()
    assert changed_signals == []


def test_blocked_term_save_and_delete_signal(
    admin_client, changed_signals, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url(BlockedTerm, "add"),
            {"pattern": r"\bfake\b", "kind": "regex", "note": "counterfeits"},
        )
    assert response.status_code == 302
    term = BlockedTerm.objects.get()
    assert changed_signals == [BlockedTerm]

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url(BlockedTerm, "delete", term.pk), {"post": "yes"})
    assert not BlockedTerm.objects.exists()
    assert changed_signals == [BlockedTerm, BlockedTerm]


def test_blocked_term_change_page_previews_matches(admin_client):
    SuggestionFactory(text="fake nike")
    SuggestionFactory(text="nike fakes")  # not a whole-word match
    SuggestionFactory(text="fake adidas", status="rejected")  # not served
    term = BlockedTermFactory(pattern="Fake", kind="word")
    response = admin_client.get(url(BlockedTerm, "change", term.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "1 (e.g. fake nike)" in html
    assert "nike fakes" not in html


# --- model versions -----------------------------------------------------------------


def post_version_action(client, action: str, objs, *, confirm: bool = True):
    data = {"action": action, "_selected_action": [o.pk for o in objs]}
    if confirm:
        data["apply"] = "yes"
    return client.post(changelist(ModelVersion), data)


def test_promote_and_roll_back_ask_first_and_say_what_changes(admin_client):
    v1 = ModelVersionFactory(version="v1", kind="suggestion_ranker", metrics={"mrr@10": 0.71},
                             baseline_metrics={"mrr@10": 0.69, "version": None})
    response = post_version_action(admin_client, "promote", [v1], confirm=False)
    html = response.content.decode()
    assert response.status_code == 200 and active_versions("suggestion_ranker") == []
    assert "v1 will serve every shopper as the suggestion_ranker model, replacing no model" in html
    assert "+0.020 against no model (popularity order) (0.690)" in html
    assert 'name="apply"' in html
    post_version_action(admin_client, "promote", [v1])
    assert active_versions("suggestion_ranker") == ["v1"]
    response = post_version_action(admin_client, "roll_back", [v1], confirm=False)
    assert "will serve again for: suggestion_ranker" in response.content.decode()
    assert active_versions("suggestion_ranker") == ["v1"]


def test_model_versions_read_in_plain_words_with_changed_examples(admin_client):
    v = ModelVersionFactory(
        version="v7", kind="suggestion_ranker", status="rejected", decision="mrr@10 0.60 vs 0.61: not better",
        metrics={"mrr@10": 0.6, "examples": [{"input": "ga", "before": ["gta 4", "gears"], "after": ["gears", "gta 4"]}]},
        baseline_metrics={"mrr@10": 0.61, "version": "v6"})
    listing = admin_client.get(changelist(ModelVersion)).content.decode()
    assert "Orders the completions of what a shopper has typed" in listing
    assert "-0.010 against version v6 (0.610)" in listing
    page = admin_client.get(url(ModelVersion, "change", v.pk)).content.decode()
    assert "not better" in page and "<td>ga</td><td>gta 4, gears</td><td>gears, gta 4</td>" in page


def test_retrain_runs_are_listed_read_only(admin_client):
    from suggestions.models import RetrainRun

    run = RetrainRun.objects.create(kind="suggestion_ranker", status="kept", log="12:00:00 snapshot\n12:01:00 kept")
    listing = admin_client.get(changelist(RetrainRun)).content.decode()
    assert "12:01:00 kept" in listing
    assert admin_client.post(url(RetrainRun, "change", run.pk), {"status": "running"}).status_code == 403


def active_versions(kind: str = "ranker") -> list[str]:
    return list(
        ModelVersion.objects.filter(kind=kind, status=ModelVersionStatus.ACTIVE).values_list(
            "version", flat=True
        )
    )


def test_promote_action_makes_exactly_one_active(admin_client):
    v1 = ModelVersionFactory(version="v1")
    v2 = ModelVersionFactory(version="v2")
    post_version_action(admin_client, "promote", [v1])
    assert active_versions() == ["v1"]
    response = post_version_action(admin_client, "promote", [v2])
    assert active_versions() == ["v2"]
    assert ModelVersion.objects.get(pk=v1.pk).status == ModelVersionStatus.RETIRED
    assert ("success", "v2 is now the active ranker model.") in messages_of(response)


def test_promote_action_needs_exactly_one(admin_client):
    v1 = ModelVersionFactory(version="v1")
    v2 = ModelVersionFactory(version="v2")
    response = post_version_action(admin_client, "promote", [v1, v2])
    assert ("error", "Select exactly one version to promote.") in messages_of(response)
    assert active_versions() == []


def test_rollback_action_reactivates_previous(admin_client):
    v1 = ModelVersionFactory(version="v1")
    v2 = ModelVersionFactory(version="v2")
    post_version_action(admin_client, "promote", [v1])
    post_version_action(admin_client, "promote", [v2])
    response = post_version_action(admin_client, "roll_back", [v2])
    assert active_versions() == ["v1"]
    assert ("success", "Rolled back ranker to v1.") in messages_of(response)

    response = post_version_action(admin_client, "roll_back", [v1])
    assert active_versions() == ["v1"]
    assert any(level == "error" for level, _text in messages_of(response))


def test_model_version_artefact_fields_are_read_only(admin_client):
    v1 = ModelVersionFactory(version="v1", artefact_uri="models/ranker/v1")
    response = admin_client.post(
        url(ModelVersion, "change", v1.pk),
        {"artefact_uri": "elsewhere", "status": "active", "notes": "tuned"},
    )
    assert response.status_code == 302
    v1.refresh_from_db()
    assert (v1.artefact_uri, v1.status, v1.notes) == ("models/ranker/v1", "candidate", "tuned")


def test_model_version_metrics_summary(admin_client):
    ModelVersionFactory(metrics={"ndcg@10": 0.41234, "mrr": 0.3, "p@1": 0.2, "loss": 1.0})
    response = admin_client.get(changelist(ModelVersion))
    assert "loss=1, mrr=0.3, ndcg@10=0.412, …" in response.content.decode()


def test_add_form_asks_only_what_a_merchandiser_knows(admin_client, django_capture_on_commit_callbacks):
    response = admin_client.get(url(Suggestion, "add"))
    form = response.context["adminform"].form
    assert set(form.fields) == {"text", "status", "weight", "pinned_prefix"}
    assert form.initial["status"] == "approved"
    assert "provenance" not in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(Suggestion, "add"), {"text": "Laptop Stand", "status": "approved",
                                                             "weight": "1", "pinned_prefix": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    added = Suggestion.objects.get(text="laptop stand")
    assert (added.source, added.status) == ("manual", "approved")


def test_change_form_says_how_a_suggestion_was_found(admin_client):
    mined = Suggestion.objects.create(text="hp toner", source="catalog", status="approved", weight=2.0,
                                      provenance={"rule": "brand_type", "products": 12})
    searched = Suggestion.objects.create(text="xbox", source="history", status="approved", weight=2.0,
                                         searches=40, distinct_users=9,
                                         provenance={"rule": "history", "distinct_users": 9, "searches": 40})
    page = admin_client.get(url(Suggestion, "change", mined.pk)).content.decode()
    assert "From the catalog: a brand and product type shared by 12 products." in page
    assert '"rule"' not in page
    page = admin_client.get(url(Suggestion, "change", searched.pk)).content.decode()
    assert "Searched 40 times by 9 different shoppers." in page
