"""Generated refinements: training pairs (k-gate, privacy), constrained decoding
with a tiny model, each gate, the review queue, and the ``generator`` kind
through the learning loop (train → evaluate → promote / reject)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from suggestions import generation, services
from suggestions.history import ImportedSearch, import_searches
from suggestions.models import (
    BlockedTerm,
    ModelVersion,
    Suggestion,
    SuggestionSource,
    SuggestionStatus,
)
from tests.plugins.services import require_module

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads; on a busy machine OpenMP's
    spinning threads make them several times slower."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sessions(pairs, *, users, when, gap=timedelta(minutes=2)):
    """Each user searches ``seed`` then ``target`` ``gap`` later, for each pair."""
    rows = []
    for i in range(users):
        for n, (seed, target) in enumerate(pairs):
            start = when + timedelta(hours=n, minutes=i)
            rows += [ImportedSearch(user=f"{when:%j}-u{i}", query=seed, time=start),
                     ImportedSearch(user=f"{when:%j}-u{i}", query=target, time=start + gap)]
    import_searches(rows)


# -- pairs ---------------------------------------------------------------------------------


def test_what_counts_as_a_refinement():
    from suggestions.ml.generator.pairs import fold, is_refinement, word_key

    assert is_refinement("running shoes", "running shoes men")
    assert is_refinement("running shoes", "nike running shoe")  # plurals folded, any order
    assert not is_refinement("running shoes", "running")  # broader, not narrower
    assert not is_refinement("running shoes", "hiking boots women")
    assert not is_refinement("tv", "tv a b c d")  # too many added words
    types = {"laser printers": "laser printer", "hp laserjet printer": "laser printer"}.get
    # Not the same words ("laser" is gone), but the same product type with a brand added.
    assert not is_refinement("laser printers", "hp laserjet printer")
    assert is_refinement("laser printers", "hp laserjet printer", product_type=lambda q: types(q, ""))
    assert not is_refinement("canon toner", "hp toner cartridge xl", product_type=lambda q: "toner")
    assert not is_refinement("hp ink", "hp toner cartridge xl", product_type=lambda q: types(q, ""))
    assert fold("boxes") == "box" and fold("glass") == "glass"
    assert word_key("shoes running") == word_key("running shoe")


def test_history_pairs_pass_the_k_gate_and_the_privacy_filter(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    now = timezone.now() - timedelta(days=1)
    sessions([("running shoes", "running shoes men")], users=3, when=now)
    sessions([("laptop", "laptop sleeve")], users=2, when=now - timedelta(days=2))  # below the gate
    sessions([("printer", "printer jane.doe@example.com")], users=4, when=now - timedelta(days=3))  # private
    sessions([("camera", "camera bag")], users=3, when=now - timedelta(days=4), gap=timedelta(hours=2))  # no session
    # Unidentified searches count no shopper.
    from suggestions.models import SearchEvent

    SearchEvent.objects.bulk_create([SearchEvent(normalized_query=q, query=q, actor_hash=f"anon{i}", identified=False,
                                                 created_at=now + timedelta(seconds=s))
                                     for i in range(5) for s, q in ((0, "tv"), (30, "tv stand"))])
    pairs = generation.history_pairs(generation.history_searches())
    assert [(p.seed, p.target, p.shoppers) for p in pairs] == [("running shoes", "running shoes men", 3)]


def test_searches_started_from_a_refinement_chip_are_never_mined_as_shoppers_refinements(settings):
    """A chip's text was offered by the shop: k shoppers accepting it is no
    evidence that shoppers refine that way (it would return the generator's
    own output to it). What a shopper typed after the chip still counts."""
    from suggestions.models import SearchEvent, SearchOrigin

    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    now = timezone.now() - timedelta(days=1)
    rows = []
    for i in range(4):
        for s, q, origin in ((0, "running shoes", SearchOrigin.TYPED),
                             (20, "running shoes men", SearchOrigin.REFINEMENT),  # a chip
                             (60, "running shoes men nike", SearchOrigin.TYPED)):
            rows.append(SearchEvent(normalized_query=q, query=q, actor_hash=f"shopper{i}", identified=True,
                                    origin=origin, created_at=now + timedelta(minutes=i * 5, seconds=s)))
    SearchEvent.objects.bulk_create(rows)
    searches = generation.history_searches()
    assert sum(s.chosen for s in searches) == 4
    pairs = {(p.seed, p.target): p.shoppers for p in generation.history_pairs(searches)}
    assert pairs == {("running shoes", "running shoes men nike"): 4, ("running shoes men", "running shoes men nike"): 4}
    # The same searches typed are the shoppers' own refinement.
    SearchEvent.objects.filter(origin=SearchOrigin.REFINEMENT).update(origin=SearchOrigin.TYPED)
    pairs = {(p.seed, p.target) for p in generation.history_pairs(generation.history_searches())}
    assert ("running shoes", "running shoes men") in pairs


def test_held_out_refinements_started_from_a_chip_are_not_units_of_the_gate(settings):
    """The gate scores the generator on what shoppers refined by themselves:
    a chip they accepted in the held-out days would score the shop's own offer."""
    from suggestions.models import SearchEvent, SearchOrigin

    settings.SUGGESTIONS_HELDOUT_DAYS = 14
    now = timezone.now()
    rows = [SearchEvent(normalized_query=f"old {i}", query=f"old {i}", actor_hash=f"o{i}", identified=True,
                        created_at=now - timedelta(days=40, minutes=i)) for i in range(10)]
    for i, (target, origin) in enumerate([("tv stand", SearchOrigin.TYPED), ("tv wall mount", SearchOrigin.REFINEMENT)]):
        start = now - timedelta(days=1, hours=i)
        rows += [SearchEvent(normalized_query="tv", query="tv", actor_hash=f"h{i}", identified=True, created_at=start),
                 SearchEvent(normalized_query=target, query=target, actor_hash=f"h{i}", identified=True,
                             origin=origin, created_at=start + timedelta(minutes=1))]
    SearchEvent.objects.bulk_create(rows)
    snapshot = generation.GeneratorKind().snapshot(log=lambda line: None, options={})
    assert snapshot.heldout == [("tv", "tv stand")]


def test_catalog_pairs_and_decisions(settings):
    Suggestion.objects.bulk_create([
        Suggestion(text="laser printer", source="catalog", provenance={"rule": "product_type"}),
        Suggestion(text="hp laser printer", source="catalog", provenance={"rule": "brand_type"}),
        Suggestion(text="color laser printer", source="catalog", provenance={"rule": "type_attribute"}),
        Suggestion(text="hp", source="catalog", provenance={"rule": "brand"}),
        Suggestion(text="laser printer a3", source="generated", status="approved",
                   provenance={"seed_query": "laser printer"}),
        Suggestion(text="laser printer cheap", source="generated", status="rejected",
                   provenance={"seed_query": "laser printer"}),
    ])
    from suggestions.adapter import ProductDocument

    docs = [ProductDocument(id=str(i), title="t", product_type="Running Shoes", attributes={"gender": "Men"})
            for i in range(3)] + [ProductDocument(id="9", title="t", product_type="Boots", attributes={"gender": "Kids"})]
    pairs = {(p.seed, p.target) for p in generation.catalog_pairs(docs)}
    assert pairs == {("laser printer", "hp laser printer"), ("laser printer", "color laser printer"),
                     ("running shoes", "running shoes men")}  # "boots kids": fewer than 3 products
    approved, rejected = generation.decisions()
    assert [(p.seed, p.target, p.weight) for p in approved] == [
        ("laser printer", "laser printer a3", settings.SUGGESTIONS_GENERATOR_APPROVED_WEIGHT
         if hasattr(settings, "SUGGESTIONS_GENERATOR_APPROVED_WEIGHT") else 5.0)]
    assert rejected == {("laser printer", "laser printer cheap")}


def test_gated_queries_found_in_titles_make_catalog_pairs(settings):
    """A query enough shoppers searched ("dance central") found in a title → it
    and the title's next words; one below the k-gate is never a seed."""
    from suggestions.adapter import ProductDocument
    from suggestions.ml.generator.pairs import Search

    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    now = timezone.now()
    searches = ([Search("dance central", f"u{i}", now) for i in range(3)]
                + [Search("rocksmith", f"u{i}", now) for i in range(2)])
    docs = [ProductDocument(id="1", title="Dance Central 2"), ProductDocument(id="2", title="Rocksmith Guitar Game")]
    pairs = generation.training_pairs(searches, documents=docs)
    assert {(p.seed, p.target) for p in pairs["catalog"]} == {("dance central", "dance central 2")}


# -- constrained decoding ------------------------------------------------------------------


@pytest.fixture
def tiny_base(tmp_path):
    require_module("torch")
    from suggestions.ml.generator.model import build_tiny_base

    texts = ["running shoes men", "nike running shoes", "hp laptop", "laptop bag", "laser printer",
             "zebra unicorn spaceship", "acme rocket"]
    return build_tiny_base(texts, tmp_path / "tiny")


def test_constrained_decoding_never_writes_an_unknown_word(tiny_base, tmp_path):
    from suggestions.ml.generator.model import GeneratorModel, TrainParams
    from suggestions.ml.generator.pairs import Pair

    # Trained to write words the shop does not sell; the trie must not let it.
    pairs = [Pair("laptop", "zebra unicorn spaceship", "catalog"), Pair("printer", "acme rocket", "catalog")]
    model = GeneratorModel.fit(tiny_base, pairs, tmp_path / "v", TrainParams(steps=60, lora=False, lr=3e-3,
                                                                             batch_size=4))
    allowed = {"hp", "laptop", "bag", "laser", "printer", "running", "shoes", "men", "nike"}
    free = model.generate(["laptop"], {"zebra", "unicorn", "spaceship", "acme", "rocket", "laptop"}, k=3,
                          keep_seed=False)
    assert free[0] and free[0][0][0] == "zebra unicorn spaceship"  # what it learnt, when allowed
    outputs = model.generate(["laptop", "printer", "running shoes"], allowed, k=6, keep_seed=False)
    assert all(outputs)
    for proposals in outputs:
        for text, score in proposals:
            assert set(text.split()) <= allowed, text
            assert len(set(text.split())) == len(text.split())  # no word twice
            assert 0 < score <= 1
    # By default a refinement keeps the seed's (known) words.
    for seed, proposals in zip(["laptop", "running shoes"], model.generate(["laptop", "running shoes"], allowed, k=6),
                               strict=True):
        for text, _score in proposals:
            assert set(seed.split()) < set(text.split()) and set(text.split()) <= allowed, text
    # Saved and reloaded, it answers the same.
    again = GeneratorModel.load(tmp_path / "v")
    assert again.generate(["laptop", "printer", "running shoes"], allowed, k=6, keep_seed=False) == outputs


def test_lora_fine_tuning_saves_an_adapter_that_reloads_on_its_base(tiny_base, tmp_path):
    require_module("peft")
    from suggestions.ml.generator.model import GeneratorModel, TrainParams
    from suggestions.ml.generator.pairs import Pair

    pairs = [Pair("laptop", "hp laptop", "catalog"), Pair("laptop", "laptop bag", "catalog")]
    model = GeneratorModel.fit(tiny_base, pairs, tmp_path / "v", TrainParams(steps=3, batch_size=2))
    assert (tmp_path / "v" / "adapter").is_dir() and not (tmp_path / "v" / "model").exists()
    assert model.meta["lora"] and model.meta["base"] == tiny_base
    words = {"hp", "laptop", "bag"}
    again = GeneratorModel.load(tmp_path / "v")
    assert again.generate(["laptop"], words, k=3) == model.generate(["laptop"], words, k=3)


def test_the_word_trie_continues_words_and_ends_only_after_a_whole_word(tiny_base):
    from transformers import AutoTokenizer

    from suggestions.ml.generator.decoding import WordTrie

    tok = AutoTokenizer.from_pretrained(tiny_base)
    trie = WordTrie(tok, ["laptop", "bag"], tok.eos_token_id, max_words=2)
    laptop = tok.encode(" laptop", add_special_tokens=False)
    bag = tok.encode(" bag", add_special_tokens=False)
    assert tok.eos_token_id not in trie.allowed([])  # no empty text
    assert set(trie.allowed([])) == {laptop[0], bag[0]}
    after = trie.allowed(laptop)
    assert tok.eos_token_id in after and bag[0] in after
    assert trie.allowed(laptop + bag) == [tok.eos_token_id]  # max_words reached
    unknown = tok.encode(" zebra", add_special_tokens=False)
    assert trie.allowed(unknown) == [tok.eos_token_id]


# -- the gates -----------------------------------------------------------------------------


@pytest.fixture
def shop(settings):
    """A small indexed catalog with its phrases built."""
    from tests.factories import ProductFactory

    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    for brand in ("HP", "Canon"):
        for colour in ("Black", "Cyan", "Magenta", "Yellow"):
            for size in ("standard", "high yield", "XL"):
                ProductFactory(brand=brand, product_type="toner cartridge",
                               title=f"{brand} {colour} toner cartridge {size}", attributes={"colour": colour})
    for i in range(4):
        ProductFactory(brand="HP", product_type="laptop", title=f"HP laptop {i} 15 inch",
                       attributes={"audience": "Students"})
    services.rebuild_index()
    services.build_suggestions()


def cand(seed, text, score=0.9):
    return generation.Candidate(seed=seed, text=text, score=score, reason="head")


def test_each_gate_stops_what_it_should(shop):
    Suggestion.objects.create(text="toner cartridges hp", source="manual")
    BlockedTerm.objects.create(pattern="yellow")
    candidates = [
        cand("hp toner cartridge", "hp toner cartridge"),  # the seed itself
        cand("hp toner cartridge", "hp toner cartridge jane@example.com"),  # private
        cand("hp toner cartridge", "hp yellow toner cartridge"),  # blocked
        cand("toner cartridge", "hp toner cartridge"),  # near-duplicate of "toner cartridges hp"
        cand("hp toner cartridge", "canon black toner cartridge"),  # loses the brand
        cand("hp toner cartridge", "hp toner cartridge laptop magenta"),  # too few results
        cand("hp toner cartridge", "hp black toner cartridge"),  # passes
        cand("hp toner cartridge", "black toner cartridge hp"),  # near-duplicate of the one just kept
    ]
    survivors, stopped = generation.gate_candidates(candidates)
    assert [c.text for c in survivors] == ["hp black toner cartridge"]
    assert survivors[0].results >= 3 and len(survivors[0].products) == 3
    assert stopped == {"same as the seed": 1, "privacy filter": 1, "blocked term": 1, "near-duplicate": 2,
                       "changes the brand or product type": 1, "too few results": 1}


def test_min_results_is_a_setting(shop, settings):
    survivors, _ = generation.gate_candidates([cand("laptop", "hp laptop students")])
    assert survivors and survivors[0].results == 4
    settings.SUGGESTIONS_GENERATED_MIN_RESULTS = 5
    survivors, stopped = generation.gate_candidates([cand("laptop", "hp laptop students")])
    assert not survivors and stopped == {"too few results": 1}


class _FixedModel:
    """Stands in for a loaded generator: proposes fixed texts."""

    def __init__(self, proposals):
        self.proposals = proposals

    def generate(self, seeds, words, *, k, batch_size):
        return [self.proposals.get(seed, []) for seed in seeds]


@pytest.fixture
def active_fixed(monkeypatch):
    version = ModelVersion.objects.create(kind="generator", version="v-test", artefact_uri="/nowhere", status="active")

    def use(proposals):
        monkeypatch.setattr(generation, "active_generator", lambda: (version, _FixedModel(proposals)))
    return use


def test_generation_stores_survivors_pending_with_provenance_and_is_idempotent(shop, active_fixed, settings):
    active_fixed({"toner cartridge": [("hp toner cartridge", 0.8), ("canon magenta toner cartridge", 0.6),
                                      ("toner cartridge students", 0.3)]})
    # "hp toner cartridge" is a catalog phrase already: a near-duplicate.
    report = services.generate_refinements({"toner cartridge": "head"})
    assert report.stored == 1 and report.approved == 0 and report.model_version == "v-test"
    row = Suggestion.objects.get(source=SuggestionSource.GENERATED)
    assert row.text == "canon magenta toner cartridge" and row.status == SuggestionStatus.PENDING
    prov = row.provenance
    assert prov["seed_query"] == "toner cartridge" and prov["model_version"] == "v-test"
    assert prov["results"] >= 3 and prov["score"] == 0.6 and prov["seed_reason"] == "head"
    assert "pair_evidence" in prov and len(prov["products"]) >= 1
    assert services.generate_refinements({"toner cartridge": "head"}).stored == 0
    # Auto-approval, when on, needs both thresholds.
    settings.SUGGESTIONS_GENERATED_AUTO_APPROVE = True
    settings.SUGGESTIONS_GENERATED_AUTO_APPROVE_RESULTS = 2
    active_fixed({"toner cartridge": [("canon black toner cartridge", 0.9), ("canon cyan toner cartridge", 0.1)]})
    report = services.generate_refinements({"toner cartridge": "head"})
    assert report.stored == 2 and report.approved == 1
    assert Suggestion.objects.get(text="canon black toner cartridge").status == SuggestionStatus.APPROVED
    assert Suggestion.objects.get(text="canon cyan toner cartridge").status == SuggestionStatus.PENDING


def test_without_an_active_generator_nothing_is_generated(shop):
    report = services.generate_refinements({"laptop": "head"})
    assert report.stored == 0 and report.model_version is None and "no active generator" in report.note


def test_seeds_are_head_zero_result_new_type_and_thin_prefix_searches(shop, settings):
    now = timezone.now()
    import_searches([ImportedSearch(user=f"u{i}", query="toner cartridge", time=now) for i in range(3)]
                    + [ImportedSearch(user="solo", query="my private thing", time=now)])
    from suggestions.models import QueryDailyStat

    QueryDailyStat.objects.create(date=timezone.localdate(), normalized_query="tonr cartrige", searches=2,
                                  zero_results=2)
    seeds = services.generation_seeds(limit=50)
    assert seeds["toner cartridge"] == "head"
    assert seeds["tonr cartrige"] == "zero_results"
    assert "my private thing" not in seeds  # below the k-gate
    assert seeds.get("laptop") == "new_type"
    assert "thin_prefix" in set(seeds.values())


# -- the review queue ------------------------------------------------------------------------


def test_review_queue_lists_pending_first_and_approves_and_rejects(shop, admin_client, active_fixed):
    active_fixed({"toner cartridge": [("canon black toner cartridge", 0.9), ("canon cyan toner cartridge", 0.5),
                                      ("canon magenta toner cartridge", 0.4)]})
    services.generate_refinements({"toner cartridge": "head"})
    Suggestion.objects.filter(text="canon magenta toner cartridge").update(status="approved")
    url = reverse("admin:shop_suggestions_generatedrefinement_changelist")
    page = admin_client.get(url).content.decode()
    assert page.index("canon black toner cartridge") < page.index("canon magenta toner cartridge")
    assert "toner cartridge" in page and "Canon" in page  # the seed and a product title
    black = Suggestion.objects.get(text="canon black toner cartridge")
    response = admin_client.post(url, {"action": "approve", "_selected_action": [black.pk]})
    assert response.status_code == 302
    black.refresh_from_db()
    assert black.status == "approved"
    cyan = Suggestion.objects.get(text="canon cyan toner cartridge")
    response = admin_client.post(url, {"action": "reject", "_selected_action": [cyan.pk]})
    cyan.refresh_from_db()
    assert cyan.status == "rejected"
    approved, rejected = generation.decisions()
    assert ("toner cartridge", "canon cyan toner cartridge") in rejected
    assert {p.target for p in approved} == {"canon black toner cartridge", "canon magenta toner cartridge"}
    # A rejected refinement never comes back.
    active_fixed({"toner cartridge": [("canon cyan toner cartridge", 0.9)]})
    assert services.generate_refinements({"toner cartridge": "head"}).stored == 0
    # The change page shows it with its evidence.
    assert admin_client.get(reverse("admin:shop_suggestions_generatedrefinement_change",
                                    args=[cyan.pk])).status_code == 200
    with pytest.raises(ValueError):
        services.review_generated(Suggestion.objects.all(), "blocked")


def test_review_one_by_one_from_the_status_column(shop, admin_client, active_fixed):
    active_fixed({"toner cartridge": [("canon black toner cartridge", 0.9)]})
    services.generate_refinements({"toner cartridge": "head"})
    row = Suggestion.objects.get(text="canon black toner cartridge")
    url = reverse("admin:shop_suggestions_generatedrefinement_changelist")
    data = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(row.pk),
            "form-0-status": "approved", "_save": "Save"}
    assert admin_client.post(url, data).status_code == 302
    row.refresh_from_db()
    assert row.status == "approved"


# -- the kind through the learning loop ------------------------------------------------------


def test_the_generator_kind_trains_evaluates_and_is_promoted_then_a_copy_is_rejected(shop, settings):
    require_module("torch")
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 2
    now = timezone.now()
    # Training days: a gated refinement; held-out days: shoppers refine toward
    # catalog pairs the co-occurrence baseline never saw in history.
    sessions([("laptop", "hp laptop")], users=2, when=now - timedelta(days=40))
    import_searches([ImportedSearch(user=f"old{i}", query="toner", time=now - timedelta(days=30, minutes=i))
                     for i in range(30)])
    held = [("toner cartridge", "canon toner cartridge"), ("toner cartridge", "hp toner cartridge"),
            ("toner cartridge", "black toner cartridge"), ("toner cartridge", "cyan toner cartridge")]
    for i, pair in enumerate(held):
        sessions([pair], users=2, when=now - timedelta(days=3, hours=i))
    report = services.retrain("generator", options={"tiny": True, "steps": 200})
    version = report.version
    assert report.promoted and version.status == "active", version.decision
    assert version.metrics["refinement_hit@10"] > version.baseline_metrics["refinement_hit@10"]
    assert version.metrics["snapshot"]["catalog_pairs"] > 0 and version.metrics["heldout_units"] == 4
    examples = version.metrics["examples"]  # what the admin shows: public seeds whose answer changed
    assert examples and all(e["before"] != e["after"] for e in examples)
    # The same data again: no better than the active version, so kept as rejected.
    again = services.retrain("generator", options={"tiny": True, "steps": 200})
    assert not again.promoted and again.version.status == "rejected"
    assert ModelVersion.objects.get(kind="generator", status="active") == version
    # The active version generates; what survives the gates waits for review.
    generation._loaded.update(version=None, model=None)
    out = services.generate_refinements({"toner cartridge": "head"})
    assert out.model_version == version.version and out.generated > 0
    for row in Suggestion.objects.filter(source="generated"):
        assert row.status == "pending" and row.provenance["results"] >= 3
        assert set(row.text.split()) <= generation.vocabulary(
            Suggestion.objects.filter(source="history").values_list("text", flat=True))
        assert row.text.split()[-2:] == ["toner", "cartridge"] or row.text.startswith("toner cartridge ")


def test_the_task_runs_through_services_and_answers_json(shop):
    import json

    from suggestions import tasks

    out = tasks.generate_refinements.apply(kwargs={"seeds": {"laptop": "head"}}).get()
    assert json.loads(json.dumps(out)) == out and out["stored"] == 0 and out["model_version"] is None
    assert tasks.generate_refinements.name == "suggestions.ml.generate_refinements"


def test_prepare_generator_leaves_a_named_base_alone(settings):
    from io import StringIO

    from django.core.management import call_command

    settings.SUGGESTIONS_GENERATOR_BASE = "/models/my-base"
    out = StringIO()
    call_command("suggestions_prepare_generator", stdout=out)
    assert "nothing to convert" in out.getvalue()
    from suggestions.ml.generator.base import resolve_base

    assert resolve_base() == "/models/my-base" and resolve_base("other") == "other"
