"""Understanding on the request path, in the (eager) workers, in search, the API and the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from suggestions import services, understanding
from suggestions.models import (
    ModelVersion,
    ModelVersionStatus,
    QueryLabel,
    QueryUnderstanding,
    SearchEvent,
)
from suggestions.nlp.types import Understanding
from suggestions.recall import SearchFilters
from tests.plugins.services import require_module

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


def test_understand_answers_from_rules_then_from_the_stored_result(gazetteer, django_capture_on_commit_callbacks,
                                                                  monkeypatch):
    from django.core.cache import caches

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = services.understand("HP laser printer under 200")
    assert first.source == "rules"
    assert first.query == "hp laser printer under 200"
    assert [e.label for e in first.entities_of("brand")] == ["brand"]
    assert first.entities_of("price_range")[0].value == "<=200"
    assert callbacks, "a worker run must be scheduled for a query not yet understood"

    # A worker (with a model whose answer differs from the rules') understands
    # the searched query and stores its answer.
    class Model:
        def predict(self, queries, batch_size=None):
            return [Understanding(query=q, language="en", intent="brand_lookup", confidence=0.9,
                                  entities=[], source="model:stub") for q in queries]

    monkeypatch.setattr(understanding, "_active_model", Model)
    services.search("HP laser printer under 200", session_key="s1")
    assert understanding.understand_pending() == 1
    stored = QueryUnderstanding.objects.get(normalized_query="hp laser printer under 200")
    assert stored.source == "model:stub"

    # Now understand() answers with the stored result (the rules are not asked),
    # from the refreshed cache and, with the cache gone, from the database.
    monkeypatch.setattr(understanding, "rules_understanding", lambda q: pytest.fail("must not fall back"))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cached = services.understand("hp  LASER printer under 200")
    assert (cached.source, cached.intent) == ("model:stub", "brand_lookup")
    assert cached.as_dict() == stored.data
    caches["default"].clear()
    from_db = services.understand("HP laser printer under 200")
    assert from_db.as_dict() == stored.data
    assert not callbacks, "nothing left to schedule for an understood query"


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


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A tiny understanding model built from a config (random weights, no
    training), saved where a model version can point at it."""
    torch = require_module("torch", "django-shop-suggestions[ml]")
    require_module("transformers", "django-shop-suggestions[ml]")
    from suggestions.ml.understanding.model import UnderstandingModel, build_tiny_base
    from suggestions.nlp.labels import DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from threads
    torch.manual_seed(0)
    base = build_tiny_base(["hp toner", "canon printer", "brother laser printer", "pixma ink"],
                           tmp_path / "base", seed=0)
    model = UnderstandingModel.from_base(base, DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS, device="cpu",
                                         meta={"version": "tiny"})
    yield str(model.save(tmp_path / "v1"))
    torch.set_num_threads(threads)


def _without_scores(data: dict) -> dict:
    """An understanding's dict without its probabilities: int8 inference
    quantises activations per batch, so the scores of a query move in the 4th
    decimal with the queries it was batched with (the worker ran them together)."""
    return {**{k: v for k, v in data.items() if k != "confidence"},
            "entities": [{k: v for k, v in e.items() if k != "score"} for e in data["entities"]]}


def test_promoting_an_understanding_model_reruns_stored_understandings(
        gazetteer, tiny_model_dir, settings, django_capture_on_commit_callbacks):
    from suggestions.ml.understanding import registry
    from suggestions.ml.understanding.model import UnderstandingModel

    settings.SUGGESTIONS_MODEL_CHECK_SECONDS = 0
    registry.reset()
    try:
        for query in ("hp toner", "canon printer"):
            services.search(query)
        services.save_label(query="pixma ink", intent="product_search", source="corrected",
                            entities=[{"label": "product_name", "start": 0, "end": 5, "text": "pixma"}])
        understanding.understand_pending()
        assert dict(QueryUnderstanding.objects.values_list("normalized_query", "source")) == {
            "hp toner": "rules", "canon printer": "rules", "pixma ink": "label"}

        version = ModelVersion.objects.create(kind="understanding", version="v1", artefact_uri=tiny_model_dir)
        # The real path: promote → active_model_changed → on commit, the
        # (eager) suggestions.ml.reunderstand task → the registry loads v1.
        with django_capture_on_commit_callbacks(execute=True):
            services.promote(version)
        version.refresh_from_db()
        assert version.status == ModelVersionStatus.ACTIVE

        expected = UnderstandingModel.load(tiny_model_dir, device="cpu")
        expected.quantize(registry.quantize_setting())  # as the workers load it
        expected.meta["version"] = "v1"
        for row in QueryUnderstanding.objects.exclude(normalized_query="pixma ink"):
            assert row.source == "model:v1", row.normalized_query
            assert _without_scores(row.data) == _without_scores(expected.predict([row.normalized_query])[0].as_dict())
            assert services.understand(row.normalized_query).source == "model:v1"  # the cache too
        assert QueryUnderstanding.objects.get(normalized_query="pixma ink").source == "label"  # labels win

        # Another kind's promotion re-runs nothing.
        QueryUnderstanding.objects.filter(normalized_query="hp toner").update(source="rules")
        other = ModelVersion.objects.create(kind="ranker", version="r1", artefact_uri="y")
        with django_capture_on_commit_callbacks(execute=True):
            services.promote(other)
        assert QueryUnderstanding.objects.get(normalized_query="hp toner").source == "rules"
    finally:
        registry.reset()


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
    form = admin_client.get(url)
    assert form.status_code == 200
    # The form starts from what is stored: the intent and one "label: text" line per entity.
    initial = form.context["form"].initial
    assert initial["intent"] == obj.intent
    assert initial["entities"].splitlines() == [f"{e['label']}: {e['text']}" for e in obj.data["entities"]]
    assert "brand: hp" in initial["entities"].splitlines()
    html = form.content.decode()
    # The allowed labels are listed, and intents read as words.
    assert "product_type" in html and "Product search</option>" in html
    bad = admin_client.post(url, {"intent": "product_search", "entities": "brand: dell"})
    assert bad.status_code == 200 and "is not in the query" in bad.content.decode()
    unknown = admin_client.post(url, {"intent": "product_search", "entities": "category: laser printer"})
    assert "unknown label “category” (use one of: " in unknown.content.decode()
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
