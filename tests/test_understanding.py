"""Understanding on the request path, in the (eager) workers, in search, the API and the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from suggestions import services, understanding
from suggestions.models import (
    ModelVersion,
    QueryLabel,
    QueryUnderstanding,
    SearchEvent,
)
from suggestions.recall import SearchFilters

pytestmark = pytest.mark.django_db


@pytest.fixture
def products():
    from catalog.models import Product

    rows = [
        ("HP LaserJet Pro M404dn laser printer", "HP", "laser printer", 279),
        ("HP LaserJet Pro M15w laser printer", "HP", "laser printer", 119),
        ("Brother HL-L2350DW laser printer", "Brother", "laser printer", 149),
        ("Canon PIXMA TS6420a inkjet printer", "Canon", "inkjet printer", 99),
        ("HP 59A toner cartridge Black", "HP", "toner cartridge", 89),
    ]
    made = [Product.objects.create(source_id=f"u{i}", title=t, brand=b, product_type=pt, price=p)
            for i, (t, b, pt, p) in enumerate(rows)]
    services.rebuild_index()  # saves index on commit, which a non-transactional test never reaches
    return made


@pytest.fixture
def gazetteer(products, settings, tmp_path):
    from suggestions.nlp.gazetteer import build_gazetteer

    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    return build_gazetteer(save=True)


def test_understand_answers_from_rules_then_from_the_stored_result(gazetteer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = services.understand("HP laser printer under 200")
    assert first.source == "rules"
    assert first.query == "hp laser printer under 200"
    assert [e.label for e in first.entities_of("brand")] == ["brand"]
    assert first.entities_of("price_range")[0].value == "<=200"
    assert callbacks, "a worker run must be scheduled for a query not yet understood"


def test_a_search_is_understood_by_the_worker_and_stored_on_the_event(gazetteer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.search("canon printer", session_key="s1")
    event = SearchEvent.objects.get()
    assert event.understanding is not None
    assert event.understanding["entities"][0]["label"] == "brand"
    stored = QueryUnderstanding.objects.get(normalized_query="canon printer")
    assert stored.source == "rules" and stored.data == event.understanding


def test_search_turns_a_price_range_into_a_filter_and_keeps_explicit_filters(gazetteer):
    page = services.search("laser printer under 200")
    assert page.understanding.entities_of("price_range")
    assert page.results and all(r.document.price <= 200 for r in page.results)
    assert {r.document.title for r in page.results[:2]} == {
        "HP LaserJet Pro M15w laser printer", "Brother HL-L2350DW laser printer"}
    assert "HP LaserJet Pro M404dn laser printer" not in {r.document.title for r in page.results}
    explicit = services.search("laser printer under 200", filters=SearchFilters(min_price=250))
    assert [r.document.price for r in explicit.results] == [279.0]


def test_search_boosts_the_understood_brand_without_filtering(gazetteer, settings):
    settings.SUGGESTIONS_ENTITY_BOOST = 50.0
    page = services.search("brother printer")
    assert page.results[0].document.brand == "Brother"
    assert page.total > 1  # other printers still listed
    settings.SUGGESTIONS_SEARCH_USES_UNDERSTANDING = False
    assert services.search("brother printer").understanding is None


def test_a_label_overrides_predictions_at_once(gazetteer):
    services.understand("pixma ts6420a")
    label = services.save_label(query="PIXMA TS6420a", intent="product_search",
                                entities=[{"label": "product_name", "start": 0, "end": 5, "text": "PIXMA"}],
                                source="corrected")
    assert QueryLabel.objects.get() == label
    result = services.understand("pixma ts6420a")
    assert result.source == "label"
    assert [(e.label, e.text, e.start, e.end) for e in result.entities] == [("product_name", "pixma", 0, 5)]
    # Workers keep the label too.
    assert understanding.understand_batch(["pixma ts6420a"])[0].source == "label"


def test_a_bad_label_stores_nothing(gazetteer):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.save_label(query="hp", intent="brand_lookup",
                            entities=[{"label": "brand", "start": 0, "end": 9}], source="corrected")
    assert not QueryLabel.objects.exists() and not QueryUnderstanding.objects.exists()


def test_promoting_an_understanding_model_reruns_stored_understandings(gazetteer, django_capture_on_commit_callbacks,
                                                                        monkeypatch):
    services.search("hp toner")
    understanding.understand_pending()
    calls = []
    # The task calls the services entry point.
    monkeypatch.setattr(services, "reunderstand", lambda **kw: calls.append(1) or 0)
    version = ModelVersion.objects.create(kind="understanding", version="v1", artefact_uri="x")
    with django_capture_on_commit_callbacks(execute=True):
        services.promote(version)
    assert calls == [1]
    other = ModelVersion.objects.create(kind="ranker", version="r1", artefact_uri="y")
    with django_capture_on_commit_callbacks(execute=True):
        services.promote(other)
    assert calls == [1]  # other kinds do not trigger it


def test_understand_pending_copies_fresh_results_without_recomputing(gazetteer, monkeypatch):
    services.search("hp toner")
    assert understanding.understand_pending() == 1
    services.search("hp toner")
    monkeypatch.setattr(understanding, "understand_batch", lambda qs: pytest.fail("must not recompute"))
    assert understanding.understand_pending() == 1
    assert not SearchEvent.objects.filter(understanding__isnull=True).exists()


# -- API -------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "!!!"}, {"q": "x" * 201}, {"q": "a\x00b"}])
def test_understand_endpoint_rejects_bad_input(client, params):
    response = client.get("/api/suggestions/understand/", params)
    assert response.status_code == 400
    assert "q" in response.json()
    assert not QueryUnderstanding.objects.exists()


def test_understand_endpoint(client, gazetteer):
    body = client.get("/api/suggestions/understand/", {"q": "Brother laser printer"}).json()
    assert body["query"] == "brother laser printer"
    assert body["source"] == "rules" and body["intent"]
    brand = next(e for e in body["entities"] if e["label"] == "brand")
    assert body["query"][brand["start"]:brand["end"]] == "brother"


# -- admin review ----------------------------------------------------------------------


def test_admin_review_lists_highlights_and_corrects(admin_client, gazetteer):
    services.search("hp laser printer")
    understanding.understand_pending()
    obj = QueryUnderstanding.objects.get()
    page = admin_client.get(reverse("admin:shop_suggestions_queryunderstanding_changelist")).content.decode()
    assert "<mark" in page and "hp laser printer" in page
    url = reverse("admin:shop_suggestions_queryunderstanding_correct", args=[obj.pk])
    assert admin_client.get(url).status_code == 200
    bad = admin_client.post(url, {"intent": "product_search", "entities": "brand: dell"})
    assert bad.status_code == 200 and "is not in the query" in bad.content.decode()
    assert not QueryLabel.objects.exists()
    done = admin_client.post(url, {"intent": "category_browse", "entities": "product_type: laser printer"})
    assert done.status_code == 302
    label = QueryLabel.objects.get()
    assert (label.intent, label.source, label.entities[0]["text"]) == ("category_browse", "corrected", "laser printer")
    assert services.understand("hp laser printer").intent == "category_browse"


def test_admin_bulk_confirm_creates_labels(admin_client, gazetteer):
    services.search("canon printer")
    services.search("hp toner")
    understanding.understand_pending()
    ids = list(QueryUnderstanding.objects.values_list("pk", flat=True))
    response = admin_client.post(reverse("admin:shop_suggestions_queryunderstanding_changelist"),
                                 {"action": "confirm", "_selected_action": ids})
    assert response.status_code == 302
    assert set(QueryLabel.objects.values_list("source", flat=True)) == {"confirmed"}
    assert QueryLabel.objects.count() == 2
