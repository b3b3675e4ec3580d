"""Cold-start suggestions mined from the catalog alone (suggestions/catalog_phrases.py)."""

from __future__ import annotations

import pytest

from suggestions import services
from suggestions.adapter import ProductDocument
from suggestions.catalog_phrases import (
    GENERIC_WORDS,
    STOP_WORDS,
    UNIT_WORDS,
    analyse,
    is_measurement,
    is_phrase,
    mine_phrases,
    noun_runs,
)
from suggestions.models import Suggestion, SuggestionStatus


def doc(title: str, brand: str = "", product_type: str = "", description: str = "", **attributes) -> ProductDocument:
    doc.counter += 1
    return ProductDocument(id=str(doc.counter), title=title, brand=brand, product_type=product_type,
                           description=description, attributes=attributes)


doc.counter = 0


def small_shop() -> list[ProductDocument]:
    """A shop whose products have no type, as most shops' imports do."""
    return [
        doc("Acme Urban Laptop Bag - 15.6 inch, Black", "Acme"),
        doc("Acme Metro Laptop Bag, Grey", "Acme"),
        doc("Zeta Classic Laptop Bag 14in Blue", "Zeta"),
        doc("Zeta Laptop Sleeve 13in", "Zeta"),
        doc("Zeta Slim Laptop Sleeve 15in", "Zeta"),
        doc("Kappa Neoprene Laptop Sleeve", "Kappa"),
        doc("Acme LaserJet Pro M404dn Printer - laser, A4", "Acme", print_technology="Laser printing"),
        doc("Acme LaserJet Pro M15w Printer - laser, wireless", "Acme", print_technology="Laser printing"),
        doc("Acme LaserJet Pro M28a Printer, laser, mono", "Acme", print_technology="Laser printing"),
        doc("Acme OfficeJet 250 Printer - inkjet, colour", "Acme", print_technology="Inkjet printing"),
        doc("Acme OfficeJet 200 Printer, inkjet", "Acme", print_technology="Inkjet printing"),
        doc("Acme OfficeJet 8010 Printer - inkjet, duplex", "Acme", print_technology="Inkjet printing"),
        doc("Linkit 6 ft HDMI Cable - M/M", "Linkit"),
        doc("Linkit 10 ft HDMI Cable - M/M", "Linkit"),
        doc("Linkit 3 ft HDMI Cable - M/F", "Linkit"),
        doc("Linkit 6 ft USB Cable - A to B", "Linkit"),
        doc("Linkit 10 ft USB Cable - A to B", "Linkit"),
        doc("Linkit 15 ft USB Cable - A to B", "Linkit"),
        doc("Orbit Series 9 NP900X3C Notebook 13.3 inch", "Orbit"),
        doc("Orbit Series 7 NP700Z5C Notebook 15.6 inch", "Orbit"),
        doc("Orbit Series 5 NP530U3C Notebook 13.3 inch", "Orbit"),
        # Says "wireless" only in an attribute: no search for "wireless mouse" finds it.
        doc("Mira M100 Optical Mouse", "Mira", connectivity="Wireless"),
        doc("Mira M200 Optical Mouse", "Mira", connectivity="Wireless"),
        doc("Mira M300 Optical Mouse", "Mira", connectivity="Wireless"),
        doc("Mira M400 Optical Mouse", "Mira", connectivity="Wired"),
        doc("Tiny Gadget Holder", "Tiny"),
        doc("Tiny Gadget Holder, XL", "Tiny"),
    ]


def all_words_match(text: str, docs: list[ProductDocument]) -> int:
    """Documents holding every word of ``text`` in a searchable field (brute force)."""
    words = set(analyse(text))
    return sum(1 for d in docs
               if words <= set(analyse(" ".join([d.title, d.brand, d.product_type, d.model_number, d.description]))))


def test_untyped_products_get_a_type_from_their_titles():
    phrases = mine_phrases(small_shop())
    assert phrases["laptop bag"].rule == "product_type" and phrases["laptop bag"].products == 3
    assert phrases["laptop sleeve"].products == 3
    assert phrases["printer"].products == 6
    assert phrases["hdmi cable"].products == 3 and phrases["cable"].products == 6
    assert "notebook" in phrases


def test_brand_plus_type_and_type_word():
    phrases = mine_phrases(small_shop())
    assert phrases["acme printer"].rule == "brand_type" and phrases["acme printer"].products == 6
    assert phrases["linkit hdmi cable"].products == 3
    # "laptop" starts two types (bag, sleeve): a shopper types it alone first.
    assert phrases["laptop"].products == 6


def test_type_plus_a_distinguishing_attribute():
    phrases = mine_phrases(small_shop())
    assert phrases["laser printer"].rule == "type_attribute" and phrases["laser printer"].products == 3
    assert phrases["inkjet printer"].products == 3
    # The attribute value says "printing": no "printing printer".
    assert "printing printer" not in phrases


def test_model_families_and_no_dangling_fragments():
    phrases = mine_phrases(small_shop())
    assert phrases["acme laserjet pro"].rule == "model_family"
    assert phrases["acme officejet"].products == 3
    for fragment in ("orbit series", "series", "linkit 6 ft", "6 ft", "linkit 6", "ft", "laserjet pro m404dn"):
        assert fragment not in phrases
    for text, phrase in phrases.items():
        if phrase.rule == "brand":
            continue
        words = text.split()
        assert words[-1] not in STOP_WORDS | UNIT_WORDS | GENERIC_WORDS, text
        assert not any(is_measurement(w) for w in words), text
        assert words[0] not in STOP_WORDS, text


def test_every_phrase_returns_at_least_min_products():
    docs = small_shop()
    phrases = mine_phrases(docs)
    assert phrases
    for text, phrase in phrases.items():
        assert phrase.matching == all_words_match(text, docs) >= 3, text
    # Two products only.
    assert "gadget holder" not in phrases and "tiny" not in phrases
    # Three wireless mice by attribute, but "wireless" is in no searchable
    # field of them: the phrase would return nothing.
    assert "wireless mouse" not in phrases
    assert "optical mouse" in phrases


def test_min_products_is_a_parameter():
    phrases = mine_phrases(small_shop(), min_products=2)
    assert "gadget holder" in phrases and phrases["gadget holder"].matching == 2
    assert "laptop bag" not in mine_phrases(small_shop(), min_products=4)


def test_explicit_types_are_kept_and_lead_derivation():
    docs = [doc(f"Nova X{i} Drip coffee maker", "Nova", "drip coffee maker") for i in range(3)]
    docs += [doc(f"Nova Barista {i} Coffee Maker - steel", "Nova") for i in range(2)]
    phrases = mine_phrases(docs)
    assert phrases["drip coffee maker"].products == 3
    # The untyped ones share the explicit type's head: "coffee maker" covers all five.
    assert phrases["coffee maker"].products == 5
    assert phrases["nova coffee maker"].products == 5


def test_noun_runs_break_on_codes_and_keep_hyphenated_words():
    runs = [words for words, _end in noun_runs("High Speed Mini-HDMI Cable MBS-100, Black")]
    assert runs == [("high", "speed", "mini", "hdmi", "cable")]
    assert is_phrase(["laser", "printer"]) and not is_phrase(["6", "ft"]) and not is_phrase(["samsung", "series"])
    assert analyse("Core™ Café") == ["core", "cafe"]


@pytest.mark.django_db
def test_a_tiny_shop_gets_sensible_completions_and_each_returns_products():
    from catalog.models import Product

    docs = small_shop()
    for i, d in enumerate(docs):
        Product.objects.create(title=d.title, brand=d.brand, attributes=d.attributes, source_id=f"cs{i}")
    services.rebuild_index()
    report = services.build_suggestions()
    assert report.history == 0 and report.catalog > 0

    def texts(prefix: str) -> list[str]:
        return [item.text for item in services.suggest(prefix, limit=8).items]

    lap = texts("lap")
    assert lap[0] == "laptop" and {"laptop bag", "laptop sleeve"} <= set(lap)
    printer = texts("printer")
    assert printer[0] == "printer"
    assert "laser printer" in texts("las") and "inkjet printer" in texts("ink")
    assert "hdmi cable" in texts("hdmi")
    assert not any(t in ("linkit 6 ft", "orbit series") for t in texts("linkit") + texts("orbit"))
    served = Suggestion.objects.filter(status=SuggestionStatus.APPROVED).values_list("text", flat=True)
    for text in served:
        assert all_words_match(text, docs) >= 3, text
        assert services.search(text, page_size=3).total >= 3, text
    # The suggestion ranker's first stage orders catalog phrases by the weight the build stored.
    kind = services.KINDS["suggestion_ranker"]
    stats = kind.stats([], kind.catalog(), served=set(served))
    for text, weight in Suggestion.objects.filter(source="catalog").values_list("text", "weight")[:50]:
        assert stats.first_stage(text) == pytest.approx(weight, abs=1e-5), text


def test_bench_counts_a_completion_made_of_the_leading_words():
    from collections import Counter

    from bench.coldstart import evaluate, prefix_table, rank_of_hit, targets_of, title_ngrams

    assert targets_of("hp laser printer") == {"hp", "hp laser", "hp laser printer"}
    assert rank_of_hit(["hp lamp", "hp laser", "hp laser printer"], targets_of("hp laser printer")) == 2
    assert rank_of_hit(["laser printer"], targets_of("hp laser printer")) == 0
    counts = title_ngrams(["HP Laser Printer", "HP Laser Toner", "Canon Printer"])
    assert counts["hp laser"] == 2 and counts["printer"] == 2 and counts["hp laser printer"] == 1
    answer = prefix_table(Counter({"hp laser": 5, "hp": 9, "hp lamp": 7, "canon": 1}), size=3)
    assert answer("hp") == ["hp", "hp lamp", "hp laser"] and answer("c") == []
    result = evaluate(["hp la"], answer)
    # Prefixes "h", "hp", "hp ", "hp l", "hp la": "hp" completes the first two only, and
    # "hp laser" is not the query or its leading words.
    assert result.overall.ranks == [1, 1, 0, 0, 0]
