"""The cheap understanding path: language, segmentation, gazetteer, intent rules."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from suggestions.nlp import segment
from suggestions.nlp.gazetteer import (
    GAZETTEER_FILENAME,
    Gazetteer,
    build_gazetteer,
    fold,
    get_gazetteer,
    reset_gazetteer_cache,
)
from suggestions.nlp.language import detect_language
from suggestions.nlp.rules import understand_with_rules
from suggestions.nlp.segment import Token, tokenize
from suggestions.nlp.types import Understanding

REPO_ROOT = Path(__file__).resolve().parents[1]

DOCS = [
    {"brand": "HP", "product_type": "notebook", "model_number": "15-DW1000",
     "attributes": {"product_colour": "Black,Silver"}},
    {"brand": "HPE", "product_type": "server"},
    {"brand": "StarTech.com", "product_type": "networking cable",
     "attributes": {"jacket_material": "Polyvinyl chloride (PVC)", "colour_toner_page_yield": "6000.0"}},
    {"brand": "TP-LINK", "product_type": "router", "model_number": "85"},
    {"brand": "Logitech", "product_type": "mouse"},
    {"brand": "Nike", "product_type": "running shoes"},
    {"brand": "华为", "product_type": "手机壳"},
    {"product_type": "headphones"},
    {"product_type": "receipt printer"},
]


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    return Gazetteer.from_documents(DOCS, [
        {"query": "apple iphone 15 case", "entities": [
            {"label": "product_name", "start": 6, "end": 15, "text": "iphone 15"},
            {"label": "price_range", "start": 0, "end": 5},  # ignored: numbers vary
        ]},
    ])


def spans(entities) -> list[tuple[str, str, str]]:
    return [(e.label, e.text, e.value) for e in entities]


# --- language ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("hp laptop", "en"), ("HP 15-DW1000", "en"), ("2024", "en"), ("", "en"), ("   ", "en"),
    ("华为手机", "zh"), ("华为 128", "zh"), ("手机，壳", "zh"),
    ("iphone 15 手机壳", "mixed"), ("T恤", "mixed"), ("Ｔ恤", "mixed"), ("café 咖啡", "mixed"),
    ("ноутбук", "en"),  # neither Han nor Latin: not Chinese
])
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


# --- segmentation -------------------------------------------------------------------------


def _check_offsets(text: str, tokens: list[Token]) -> None:
    last = 0
    for tok in tokens:
        assert text[tok.start:tok.end] == tok.text
        assert tok.start >= last
        last = tok.end


@pytest.mark.parametrize(("text", "expected"), [
    ("StarTech.com USB-C to 3.5mm, $100", ["StarTech.com", "USB-C", "to", "3.5mm", "$100"]),
    ("men's  shoes (size 10.5)", ["men's", "shoes", "size", "10.5"]),
    ("c++ book; 10% off!", ["c++", "book", "10%", "off"]),
    ("a_b/c", ["a", "b/c"]),
    ("", []),
])
def test_tokenize_latin(text: str, expected: list[str]) -> None:
    tokens = tokenize(text)
    assert [t.text for t in tokens] == expected
    _check_offsets(text, tokens)


def test_tokenize_chinese_and_mixed() -> None:
    text = "我要买 华为p40pro手机（黑色）"
    tokens = tokenize(text)
    _check_offsets(text, tokens)
    words = [t.text for t in tokens]
    assert "华为" in words and "p40pro" in words and "手机" in words and "黑色" in words
    assert "（" not in words and " " not in words
    assert segment.jieba_loaded()


def test_add_words_makes_jieba_keep_a_user_word() -> None:
    word = "飞鱼鲸灯"  # not in jieba's dictionary: cut in two by default
    text = f"买{word}送礼"
    assert word not in segment.added_words(), "no other test may add this word"
    assert word not in [t.text for t in tokenize(text)]
    # Only the Han word counts: Latin, spaced and empty words are skipped.
    assert segment.add_words([word, "hp", "飞鱼 鲸灯", "", word]) == 1
    assert segment.add_words([word]) == 0  # already added
    tokens = tokenize(text)
    assert Token(word, 1, 5) in tokens
    _check_offsets(text, tokens)
    assert word in segment.added_words()
    assert "hp" not in segment.added_words() and "飞鱼 鲸灯" not in segment.added_words()


def test_warm_up_reports_seconds() -> None:
    # In a fresh process: the first call loads jieba and reports how long that
    # took (measurably more than nothing, at most the call's own wall time);
    # later calls do nothing and report the same figure.
    code = (
        "import json, time\n"
        "from suggestions.nlp import segment\n"
        "before = segment.jieba_loaded()\n"
        "started = time.perf_counter()\n"
        "first = segment.warm_up()\n"
        "wall = time.perf_counter() - started\n"
        "print(json.dumps([before, first, wall, segment.warm_up(), segment.jieba_loaded()]))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    before, first, wall, again, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert before is False and loaded is True
    assert 0.001 < first <= wall
    assert again == first
    assert segment.warm_up() > 0.0 and segment.jieba_loaded()  # this process too


# --- gazetteer tagging --------------------------------------------------------------------


def test_fold_keeps_length() -> None:
    for text in ["ＨＰ Ｔ恤", "İstanbul ﬁ", "“quote” — dash"]:
        assert len(fold(text)) == len(text)
    assert fold("ＵＳＢ-Ｃ") == "usb-c"


@pytest.mark.parametrize(("text", "expected"), [
    ("hp notebook", [("brand", "hp", "HP"), ("product_type", "notebook", "notebook")]),
    # Token boundaries: no "hp" inside "hpe", "hp15" or "ahp".
    ("hpe server", [("brand", "hpe", "HPE"), ("product_type", "server", "server")]),
    ("hp15 ahp", []),
    ("HP-compatible toner", [("brand", "HP", "HP")]),
    # Case, width and whitespace insensitive; plural variants of types.
    ("ＨＰ   Notebooks", [("brand", "ＨＰ", "HP"), ("product_type", "Notebooks", "notebook")]),
    # Longest match: the two-word type wins over the word "cable" alone.
    ("startech networking  cables", [("brand", "startech", "StarTech.com"),
                                     ("product_type", "networking  cables", "networking cable")]),
    ("tplink router", [("brand", "tplink", "TP-LINK"), ("product_type", "router", "router")]),
    ("tp link routers", [("brand", "tp link", "TP-LINK"), ("product_type", "routers", "router")]),
    # Model numbers, also without separators; short numeric codes are not kept.
    ("15-dw1000 battery", [("model_number", "15-dw1000", "15-DW1000")]),
    ("15dw1000", [("model_number", "15dw1000", "15-DW1000")]),
    ("router 85", [("product_type", "router", "router")]),
    # Attribute values: colours split on commas, materials with their abbreviation.
    ("silver pvc cable", [("color", "silver", "Silver"), ("material", "pvc", "Polyvinyl chloride")]),
    # Merchandisers' labels.
    ("iphone 15 case", [("product_name", "iphone 15", "iphone 15")]),
    # Built-ins in English and Chinese, values in English.
    ("black leather mens wallet", [("color", "black", "Black"), ("material", "leather", "leather"),
                                   ("audience", "mens", "men")]),
    ("黑色男士真皮钱包", [("color", "黑色", "black"), ("audience", "男士", "men"), ("material", "真皮", "leather")]),
    # Chinese matches at any position, also next to Latin text.
    ("华为手机壳", [("brand", "华为", "华为"), ("product_type", "手机壳", "手机壳")]),
    ("买hp打印机", [("brand", "hp", "HP"), ("product_type", "打印机", "printer")]),
])
def test_gazetteer_tag(gaz: Gazetteer, text: str, expected) -> None:
    entities = gaz.tag(text)
    assert spans(entities) == expected
    for e in entities:
        assert text[e.start:e.end] == e.text
    assert [e.start for e in entities] == sorted(e.start for e in entities)


@pytest.mark.parametrize(("text", "label", "span", "value"), [
    ("headphones under 100", "price_range", "under 100", "<=100"),
    ("below $50", "price_range", "below $50", "<=50"),
    ("less than 20 dollars", "price_range", "less than 20 dollars", "<=20"),
    ("tv 100-200", "price_range", "100-200", "100-200"),
    ("$100 to $200", "price_range", "$100 to $200", "100-200"),
    ("between 50 and 100 dollars", "price_range", "between 50 and 100 dollars", "50-100"),
    ("over 500", "price_range", "over 500", ">=500"),
    ("< 100", "price_range", "< 100", "<=100"),
    ("$50 and under", "price_range", "$50 and under", "<=50"),
    ("$500+ tv", "price_range", "$500+", ">=500"),
    ("under 2k", "price_range", "under 2k", "<=2000"),
    ("$1,299.99", "price_range", "$1,299.99", "1299.99"),
    ("100元以下", "price_range", "100元以下", "<=100"),
    ("200以内的耳机", "price_range", "200以内", "<=200"),
    ("低于300元", "price_range", "低于300元", "<=300"),
    ("500元以上", "price_range", "500元以上", ">=500"),
    ("100-200元", "price_range", "100-200元", "100-200"),
    ("2 pack", "quantity", "2 pack", "2"),
    ("6 pc", "quantity", "6 pc", "6"),
    ("set of 4", "quantity", "set of 4", "4"),
    ("3件", "quantity", "3件", "3"),
    ("两件套", "quantity", "两件套", "2"),
    ("15 inch laptop", "size", "15 inch", "15 inch"),
    ('15.6" laptop', "size", '15.6"', "15.6 inch"),
    ("1tb ssd", "size", "1tb", "1 tb"),
    ("500gb", "size", "500gb", "500 gb"),
    ("xl shirt", "size", "xl", "xl"),
    ("nike 10.5", "size", "10.5", "10.5"),
    ("usb-c 3.5mm", "size", "3.5mm", "3.5 mm"),
    ("55寸电视", "size", "55寸", "55 inch"),
])
def test_regex_rules(gaz: Gazetteer, text: str, label: str, span: str, value: str) -> None:
    found = [(e.label, e.text, e.value) for e in gaz.tag(text) if e.label == label]
    assert found == [(label, span, value)]


@pytest.mark.parametrize("text", [
    "便宜手机",           # a deal word, not a price
    "up to 64 gb",       # a measure, not money
    "2019-2020 calendar",
    "2 in 1 laptop",
    "5g phone",
    "price 100",         # a bare number is no price
])
def test_regex_rules_leave_non_prices_alone(gaz: Gazetteer, text: str) -> None:
    assert not [e for e in gaz.tag(text) if e.label == "price_range"]


def test_same_span_precedence() -> None:
    gaz = Gazetteer(builtins=False)
    gaz.add("1tb", "model_number", "1TB")  # catalog: loses to the size rule
    gaz.add("black", "brand", "Black Inc", count=3)
    gaz.add("black", "color", "black", count=5)  # seen more often: wins
    gaz.add("orange", "color", "orange", source="builtin", count=0)
    gaz.add("orange", "brand", "Orange", count=1)  # catalog beats built-in
    gaz.add("jumbo", "brand", "Jumbo", count=100)
    gaz.add("jumbo", "product_type", "jumbo", source="label")  # a reviewed label beats all
    assert spans(gaz.tag("1tb")) == [("size", "1tb", "1 tb")]
    assert gaz.lookup("Black").label == "color"
    assert gaz.lookup("orange").label == "brand"
    assert gaz.lookup("JUMBO").source == "label"
    assert not gaz.add("a", "brand")  # single Latin characters would tag every "a"


# --- intents ------------------------------------------------------------------------------


INTENT_CASES = [
    ("where is my order", "customer_service"),
    ("track my order 12345", "customer_service"),
    ("how do i return an item", "customer_service"),
    ("refund", "customer_service"),
    ("hp warranty claim", "customer_service"),
    ("shipping", "customer_service"),
    ("退货", "customer_service"),
    ("我的订单在哪里", "customer_service"),
    ("login", "navigation"),
    ("sign in", "navigation"),
    ("my account", "navigation"),
    ("$50 gift card", "navigation"),
    ("store locator", "navigation"),
    ("购物车", "navigation"),
    ("is the hp notebook waterproof", "product_question"),
    ("can i use a logitech mouse on a mac", "product_question"),
    ("which headphones are best?", "product_question"),
    ("华为手机壳怎么样", "product_question"),
    ("这个耳机多少钱", "product_question"),
    ("cheap headphones", "price_deal"),
    ("mouse deals", "price_deal"),
    ("headphones under 50", "price_deal"),
    ("便宜耳机", "price_deal"),
    ("100元以下的耳机", "price_deal"),
    ("hp", "brand_lookup"),
    ("startech", "brand_lookup"),
    ("华为", "brand_lookup"),
    ("hp official store", "brand_lookup"),
    ("headphones", "category_browse"),
    ("black headphones for men", "category_browse"),
    ("男士黑色耳机", "category_browse"),
    ("receipt printer", "category_browse"),  # "receipt" is inside a product type
    ("hp notebook", "product_search"),
    ("logitech wireless mouse", "product_search"),
    ("can opener", "product_search"),  # "can" before a noun is no question
    ("hp cart", "product_search"),  # a weak navigation word next to a brand
    ("iphone 15 pro max 256gb", "product_search"),
]


@pytest.mark.parametrize(("query", "intent"), INTENT_CASES)
def test_intent_rules(gaz: Gazetteer, query: str, intent: str) -> None:
    u = understand_with_rules(query, gaz)
    assert u.intent == intent, u
    assert u.source == "rules"
    assert 0.0 < u.confidence <= 1.0
    for e in u.entities:
        assert query[e.start:e.end] == e.text


def test_understanding_shape(gaz: Gazetteer) -> None:
    u = understand_with_rules("Black HP notebooks under $500", gaz)
    assert isinstance(u, Understanding)
    assert u.language == "en"
    assert u.intent == "price_deal" and u.confidence == pytest.approx(0.85)
    assert spans(u.entities) == [("color", "Black", "Black"), ("brand", "HP", "HP"),
                                 ("product_type", "notebooks", "notebook"),
                                 ("price_range", "under $500", "<=500")]
    assert u.tokens == ("Black", "HP", "notebooks", "under", "$500")
    assert Understanding.from_dict(json.loads(json.dumps(u.as_dict()))) == u

    zh = understand_with_rules("华为手机壳", gaz)
    assert zh.language == "zh" and zh.tokens and "".join(zh.tokens) == "华为手机壳"

    empty = understand_with_rules("   ", gaz)
    assert empty.intent == "product_search" and empty.confidence == 0.0 and empty.entities == ()

    plain = understand_with_rules("wireless earbuds", gaz)
    assert plain.intent == "product_search" and plain.confidence == pytest.approx(0.6)


def test_restricted_to_configured_labels(gaz: Gazetteer, settings) -> None:
    settings.SUGGESTIONS_INTENTS = ["product_search", "category_browse", "customer_service"]
    settings.SUGGESTIONS_ENTITY_LABELS = ["brand", "product_type"]
    u = understand_with_rules("black hp notebook under 500", gaz)
    assert {e.label for e in u.entities} == {"brand", "product_type"}
    assert u.intent == "product_search"  # price_deal is not configured; its entity was dropped
    # A rule intent that is not configured falls back to the first configured one.
    u = understand_with_rules("cheap hp", gaz)
    assert u.intent == "product_search" and u.confidence == pytest.approx(0.5)
    assert understand_with_rules("refund", gaz).intent == "customer_service"
    # Without the brand label, "hp" alone is no brand lookup.
    settings.SUGGESTIONS_INTENTS = ["category_browse", "brand_lookup"]
    settings.SUGGESTIONS_ENTITY_LABELS = ["product_type"]
    assert understand_with_rules("hp", gaz).intent == "category_browse"
    assert understand_with_rules("hp", gaz).entities == ()


# --- persistence ----------------------------------------------------------------------------


def test_save_and_load_round_trip(gaz: Gazetteer, tmp_path) -> None:
    path = tmp_path / "sub" / "g.json"
    gaz.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "shop_suggestions.gazetteer" and data["version"] == 1
    assert all(row[3] != "builtin" for row in data["entries"])  # built-ins are code, not data
    loaded = Gazetteer.load(path)
    assert list(loaded.entries()) == list(gaz.entries())
    for text in ["startech networking cables", "黑色男士真皮钱包", "iphone 15 case under $20"]:
        assert loaded.tag(text) == gaz.tag(text)
    assert not list(tmp_path.glob("sub/.gazetteer-*"))  # no temp file left behind

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(ValueError):
        Gazetteer.load(bad)


def test_get_gazetteer_reloads_on_mtime_change(settings, tmp_path) -> None:
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    reset_gazetteer_cache()
    try:
        # No file yet: the built-in lists.
        builtin = get_gazetteer()
        assert spans(builtin.tag("black acme")) == [("color", "black", "black")]

        path = tmp_path / "models" / GAZETTEER_FILENAME
        first = Gazetteer()
        first.add("Acme", "brand", "Acme")
        first.save(path)
        g1 = get_gazetteer()
        assert g1 is not builtin and spans(g1.tag("acme")) == [("brand", "acme", "Acme")]
        assert get_gazetteer() is g1  # unchanged file: same object, no reload

        second = Gazetteer()
        second.add("Zenith", "brand", "Zenith")
        second.save(path)
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
        g2 = get_gazetteer()
        assert g2 is not g1
        assert spans(g2.tag("zenith acme")) == [("brand", "zenith", "Zenith")]

        # A broken file keeps the previous gazetteer.
        path.write_text("{not json", encoding="utf-8")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 4_000_000_000))
        assert get_gazetteer() is g2
        # The rules use the process's gazetteer by default.
        assert understand_with_rules("zenith").intent == "brand_lookup"
    finally:
        reset_gazetteer_cache()


@pytest.mark.django_db
def test_build_gazetteer_from_catalog_and_labels(settings, tmp_path) -> None:
    from catalog.models import Product
    from suggestions.models import QueryLabel

    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    reset_gazetteer_cache()
    try:
        Product.objects.create(title="Kensington K72337 mouse Black", brand="Kensington", model_number="K72337",
                               product_type="mouse", price="19.99", attributes={"product_colour": "Black"},
                               source_id="icecat-1")
        Product.objects.create(title="StarTech.com 2m Cat6 networking cable Blue", brand="StarTech.com",
                               product_type="networking cable", attributes={"cable_colour": "Blue"},
                               source_id="icecat-2")
        Product.objects.create(title="   ", brand="Hidden", source_id="icecat-3")  # not searchable
        QueryLabel.objects.create(normalized_query="罗技鼠标", query="罗技鼠标", intent="product_search",
                                  entities=[{"label": "brand", "start": 0, "end": 2, "text": "罗技", "value": "Logitech"}])
        QueryLabel.objects.create(normalized_query="ergo pad", query="Ergo Pad", intent="product_search",
                                  entities=[{"label": "product_name", "start": 0, "end": 8}])

        built = build_gazetteer()
        path = tmp_path / "models" / GAZETTEER_FILENAME
        assert path.exists()
        assert get_gazetteer() is built  # installed as the process's gazetteer
        assert built.lookup("kensington").value == "Kensington"
        assert built.lookup("startech").value == "StarTech.com"
        assert built.lookup("k72337").label == "model_number"
        assert built.lookup("hidden") is None
        assert spans(built.tag("罗技鼠标")) == [("brand", "罗技", "Logitech"), ("product_type", "鼠标", "mouse")]
        assert spans(built.tag("ergo pad blue")) == [("product_name", "ergo pad", "Ergo Pad"),
                                                     ("color", "blue", "Blue")]
        assert "罗技" in segment.added_words()  # brands feed the segmenter
        assert Gazetteer.load(path).lookup("networking cables").value == "networking cable"

        unsaved = build_gazetteer(save=False)
        assert unsaved is not built and unsaved.lookup("kensington") is not None
        assert get_gazetteer() is built
    finally:
        reset_gazetteer_cache()


# --- import hygiene ---------------------------------------------------------------------------


def test_cheap_path_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "import suggestions.nlp.rules, suggestions.nlp.gazetteer, suggestions.nlp.segment\n"
        "import suggestions.nlp.language, suggestions.ml, suggestions.ml.understanding.dictionary\n"
        "import suggestions.ml.understanding.phrases, suggestions.ml.understanding.dataset\n"
        "assert 'jieba' not in sys.modules, 'jieba must load lazily'\n"
        "from suggestions.nlp.segment import tokenize\n"
        "from suggestions.nlp.gazetteer import Gazetteer\n"
        "from suggestions.nlp.rules import understand_with_rules\n"
        "u = understand_with_rules('黑色 hp 耳机 under $50', Gazetteer(), intents=['product_search'],"
        " entity_labels=['color', 'price_range'])\n"
        "assert u.entities and 'jieba' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_keyword_intent_settles_only_keyword_intents():
    from suggestions.nlp.rules import keyword_intent
    from suggestions.nlp.types import Entity

    assert keyword_intent("where is my order")[0] == "customer_service"
    assert keyword_intent("sign in")[0] == "navigation"
    assert keyword_intent("how to clean a cast iron pan")[0] == "product_question"
    assert keyword_intent("cheap hdmi cable")[0] == "price_deal"
    assert keyword_intent("acme desk lamp") is None  # brand / category / search: the model decides
    assert keyword_intent("") is None
    assert keyword_intent("return of the jedi dvd") is None  # a weak keyword does not settle it
    title = Entity(label="product_name", text="my order of things", start=0, end=18, value="my order of things")
    assert keyword_intent("my order of things book")[0] == "customer_service"
    assert keyword_intent("my order of things book", [title]) is None  # the keyword is part of a name


# -- keyword phrases: the trie pattern finds what the longest-first alternation found --------------

@functools.cache
def _alternation(phrases):
    """The keyword pattern as it was built before the trie: every phrase, longest first."""
    import re

    from suggestions.nlp.rules import _HAN_START

    parts = []
    for phrase in sorted(phrases, key=len, reverse=True):
        body = r"\s+".join(re.escape(w) for w in phrase.split())
        parts.append(body if _HAN_START.match(phrase) else rf"(?<![a-z0-9]){body}(?![a-z0-9])")
    return re.compile("|".join(parts))


def _keyword_pieces():
    from suggestions.nlp.rules import _KEYWORDS

    words = sorted({w for phrase in _KEYWORDS for w in phrase.split()})
    # Keyword words, their cut-offs and extensions, and neighbours that break word boundaries.
    return words + [w[:-1] for w in words if len(w) > 2] + [w + "s" for w in words] + [
        "-", "'", "?", "x", "9", "my", "的", "物", "流"]


# A query: pieces joined by nothing (so words run together), spaces or a tab.
_QUERIES = st.lists(st.tuples(st.sampled_from(["", " ", "  ", "\t"]), st.sampled_from(_keyword_pieces())),
                    max_size=8).map(lambda parts: "".join(joiner + piece for joiner, piece in parts))


@hsettings(max_examples=1500, deadline=None)
@given(_QUERIES)
def test_the_keyword_trie_matches_the_longest_first_alternation(text):
    from suggestions.nlp.rules import _KEYWORD_RE, _KEYWORDS

    reference = _alternation(tuple(_KEYWORDS))
    assert [m.span() for m in _KEYWORD_RE.finditer(text)] == [m.span() for m in reference.finditer(text)]


def test_the_keyword_trie_matches_the_alternation_on_every_phrase():
    from suggestions.nlp.rules import _KEYWORD_RE, _KEYWORDS

    reference = _alternation(tuple(_KEYWORDS))
    for phrase in _KEYWORDS:
        for text in (phrase, f"best {phrase} now", f"x{phrase}", phrase.replace(" ", "   ")):
            assert ([m.span() for m in _KEYWORD_RE.finditer(text)]
                    == [m.span() for m in reference.finditer(text)]), text
