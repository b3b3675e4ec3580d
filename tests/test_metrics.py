"""Prometheus metrics: who may read them, what the request path counts, what a scrape reads."""

from __future__ import annotations

import pytest
from django.urls import reverse
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from suggestions import metrics, services
from suggestions.models import ModelVersion, RetrainRun, SearchEvent, Suggestion
from suggestions.recall import RecallUnavailable

pytestmark = pytest.mark.django_db


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client) -> dict[str, list]:
    response = client.get(reverse("suggestions:metrics"))
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    families = text_string_to_metric_families(response.content.decode())
    return {f.name: f.samples for f in families}


def test_metrics_need_the_token_or_a_staff_login(client, admin_client, settings, django_user_model):
    url = reverse("suggestions:metrics")
    assert client.get(url).status_code == 403
    settings.SUGGESTIONS_METRICS_TOKEN = "s3cret"
    assert client.get(url, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get(url, HTTP_AUTHORIZATION="s3cret").status_code == 403
    assert client.get(url, HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    assert admin_client.get(url).status_code == 200
    shopper = django_user_model.objects.create_user("shopper", password="pw-12345678")
    client.force_login(shopper)
    assert client.get(url).status_code == 403


def test_suggest_answers_are_counted_by_where_they_came_from():
    Suggestion.objects.create(text="metrics toner", source="history", status="approved", weight=5)
    services.publish_suggestions()
    api = APIClient()
    before = {s: value("shop_suggestions_suggest_answers_total", source=s) for s in ("local", "shared", "computed")}
    timed = value("shop_suggestions_request_seconds_count", endpoint="suggest")
    api.get("/api/suggestions/suggest/", {"q": "metrics to"})
    api.get("/api/suggestions/suggest/", {"q": "metrics to"})
    after = {s: value("shop_suggestions_suggest_answers_total", source=s) for s in before}
    assert after["computed"] - before["computed"] == 1
    assert (after["local"] + after["shared"]) - (before["local"] + before["shared"]) == 1
    assert value("shop_suggestions_request_seconds_count", endpoint="suggest") - timed == 2


def test_degraded_answers_are_counted_by_cause(monkeypatch):
    class Down:
        def suggest(self, *args, **kwargs):
            raise RecallUnavailable("down")

        def search_products(self, *args, **kwargs):
            raise RecallUnavailable("down")

    monkeypatch.setattr("suggestions.serving.get_backend", lambda alias="default": Down())
    monkeypatch.setattr("suggestions.services.get_backend", lambda alias="default": Down())
    before_suggest = value("shop_suggestions_degraded_answers_total", endpoint="suggest", reason="recall")
    before_search = value("shop_suggestions_degraded_answers_total", endpoint="search", reason="recall")
    api = APIClient()
    assert api.get("/api/suggestions/suggest/", {"q": "zz degraded"}).json()["degraded"] is True
    assert api.get("/api/suggestions/search/", {"q": "zz degraded"}).json()["degraded"] is True
    assert value("shop_suggestions_degraded_answers_total", endpoint="suggest", reason="recall") == before_suggest + 1
    assert value("shop_suggestions_degraded_answers_total", endpoint="search", reason="recall") == before_search + 1


def test_events_are_counted_accepted_and_ignored():
    accepted = value("shop_suggestions_events_total", outcome="accepted")
    ignored = value("shop_suggestions_events_total", outcome="ignored")
    body = {"events": [
        {"type": "impression", "request_id": "a" * 32, "prefix": "to", "suggestions": ["toner"]},
        {"type": "product_click", "request_id": "b" * 32, "query": "toner", "product_id": "999999", "position": 0},
    ]}
    response = APIClient().post("/api/suggestions/events/", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 1, "ignored": 1}
    assert value("shop_suggestions_events_total", outcome="accepted") == accepted + 1
    assert value("shop_suggestions_events_total", outcome="ignored") == ignored + 1


def test_scrape_reads_backlog_models_runs_and_queues(admin_client, settings):
    settings.SUGGESTIONS_METRICS_QUEUES = ["default", "gpu"]
    SearchEvent.objects.create(query="hp toner", normalized_query="hp toner", results_count=3)
    SearchEvent.objects.create(query="canon", normalized_query="canon", results_count=3, understanding={"intent": "x"})
    ModelVersion.objects.create(kind="suggestion_ranker", version="v7", status="active")
    ModelVersion.objects.create(kind="suggestion_ranker", version="v8", status="candidate")
    RetrainRun.objects.create(kind="suggestion_ranker", status="kept")
    RetrainRun.objects.create(kind="suggestion_ranker", status="kept")
    samples = scrape(admin_client)
    assert samples["shop_suggestions_understanding_backlog"][0].value == 1
    active = [(s.labels, s.value) for s in samples["shop_suggestions_active_model"]]
    assert active == [({"kind": "suggestion_ranker", "version": "v7"}, 1.0)]
    runs = {(s.labels["kind"], s.labels["outcome"]): s.value for s in samples["shop_suggestions_retrain_runs"]}
    assert runs == {("suggestion_ranker", "kept"): 2.0}
    assert samples["shop_suggestions_broker_up"][0].value == 1
    assert {s.labels["queue"] for s in samples["shop_suggestions_queue_depth"]} == {"default", "gpu"}
    # The request-path families are on the same page.
    assert "shop_suggestions_request_seconds" in samples


def test_a_dead_broker_is_reported_not_a_failed_scrape(admin_client, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    from celery import current_app

    monkeypatch.setattr(current_app, "connection_for_read", refuse)
    samples = scrape(admin_client)
    assert samples["shop_suggestions_broker_up"][0].value == 0
    assert samples["shop_suggestions_queue_depth"] == []


def test_metrics_can_be_turned_off(settings):
    settings.SUGGESTIONS_METRICS = False
    before = value("shop_suggestions_request_seconds_count", endpoint="suggest")
    APIClient().get("/api/suggestions/suggest/", {"q": "off"})
    assert value("shop_suggestions_request_seconds_count", endpoint="suggest") == before
    assert not metrics.enabled()
