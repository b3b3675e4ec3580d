"""Pinyin and initials input: the conversion, and the contract on every backend.

The contract part reuses the backend fixture of the recall contract suite, so
each test runs against tantivy and against the Elasticsearch-compatible test
server.
"""

from __future__ import annotations

import pytest
from django.core import checks

from suggestions.nlp.pinyin import has_hanzi, index_keys, typed_key
from suggestions.recall import SuggestionEntry, get_backend, reset_backends
from tests.test_recall_contract import SUGGESTIONS as ENGLISH_SUGGESTIONS
from tests.test_recall_contract import backend, texts  # noqa: F401 - the shared fixture


# -- conversion -------------------------------------------------------------
def test_full_pinyin_and_initials():
    keys = index_keys("跑鞋")
    assert keys.full[0] == "paoxie"
    assert keys.initials[0] == "px"


@pytest.mark.parametrize(
    ("text", "full", "initials"),
    [
        # Heteronyms read as in their phrase (pypinyin's phrases + CC-CEDICT).
        ("银行卡", "yinhangka", "yhk"),
        ("重庆火锅", "chongqinghuoguo", "cqhg"),
        ("长裤女", "changkunv", "ckn"),
        ("音乐", "yinyue", "yy"),
        # zh/ch/sh count as their first letter, as input methods do.
        ("手机", "shouji", "sj"),
    ],
)
def test_heteronyms_take_the_reading_of_their_phrase(text, full, initials):
    keys = index_keys(text)
    assert keys.full[0] == full
    assert keys.initials[0] == initials


def test_phrases_read_differently_by_the_dictionaries_keep_both_readings():
    # pypinyin alone reads 还款 hai kuan, CC-CEDICT huan kuan (right); CC-CEDICT
    # alone reads 劲爆 jing bao, pypinyin jin bao (right).
    assert {"huankuan", "haikuan"} <= set(index_keys("还款").full)
    assert {"jinbao", "jingbao"} <= set(index_keys("劲爆").full)
    assert index_keys("还款").initials == ("hk",)


def test_ambiguous_characters_get_a_few_variants():
    keys = index_keys("朝阳")  # chao yang (the district) or zhao yang (morning sun)
    assert set(keys.full) >= {"chaoyang", "zhaoyang"}
    assert len(keys.full) <= 4 and len(keys.initials) <= 4
    # A long query with many ambiguous phrases stays within the cap.
    many = index_keys("朝阳还款劲爆坐着堆高车")
    assert len(many.full) == 4 and len(set(many.full)) == 4


def test_characters_outside_phrases_keep_their_usual_reading_only():
    # 包 can be read pao and fu, 亨 peng: as variants they made "px" suggest
    # 包心肉丸 and 亨鲜客.
    assert index_keys("包心肉丸批发").full == ("baoxinrouwanpifa",)
    assert index_keys("亨鲜客").initials == ("hxk",)


def test_mixed_text_keeps_latin_words_and_digits_whole():
    keys = index_keys("iphone12 手机壳")
    assert keys.full[0] == "iphone12shoujike"
    assert keys.initials[0] == "iphone12sjk"
    assert index_keys("tasco望远镜").initials[0] == "tascowyj"


def test_text_without_hanzi_has_no_keys():
    assert not index_keys("hp laserjet")
    assert index_keys("hp laserjet").full == ()
    assert not has_hanzi("ноутбук") and has_hanzi("佳能 墨盒")


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("paoxie", "paoxie"),
        ("pao x", "paox"),
        ("Pao  Xie ", "paoxie"),
        ("px", "px"),
        ("iphone手机k", "iphoneshoujik"),
        ("跑x", "paox"),
        ("p-x", "px"),
    ],
)
def test_typed_input_is_converted_like_the_keys(typed, key):
    assert typed_key(typed) == key


def test_input_in_characters_only_is_not_matched_by_sound():
    assert typed_key("手机") == ""
    assert typed_key("123") == ""
    assert typed_key("") == ""


# -- the contract on both backends --------------------------------------------
ZH = [
    SuggestionEntry("跑鞋", 50, "history"),
    SuggestionEntry("跑鞋男", 80, "history"),
    SuggestionEntry("泡椒", 60, "history"),
    SuggestionEntry("跑步机", 40, "history"),
    SuggestionEntry("iphone手机壳", 30, "history"),
    SuggestionEntry("iphone手机", 20, "history"),
    SuggestionEntry("手机", 90, "history"),
    SuggestionEntry("首级", 1, "history"),
    SuggestionEntry("银行卡套", 10, "history"),
    SuggestionEntry("pxc", 5, "history"),
]


@pytest.fixture
def zh_shop(backend):  # noqa: F811 - the imported fixture
    backend.replace_suggestions(ZH)
    return backend


def test_full_pinyin_finds_the_query_first(zh_shop):
    # The query spelled out leads, though 跑鞋男 weighs more.
    assert texts(zh_shop.suggest("paoxie")) == ["跑鞋", "跑鞋男"]
    assert texts(zh_shop.suggest("shouji"))[0] == "手机"


def test_partial_last_syllable_completes_by_weight(zh_shop):
    assert texts(zh_shop.suggest("pao")) == ["跑鞋男", "泡椒", "跑鞋", "跑步机"]
    assert texts(zh_shop.suggest("paoxi")) == ["跑鞋男", "跑鞋"]
    assert texts(zh_shop.suggest("pao x")) == ["跑鞋男", "跑鞋"]
    assert texts(zh_shop.suggest("yinhang")) == ["银行卡套"]
    assert texts(zh_shop.suggest("yinhangk")) == ["银行卡套"]


def test_initials_after_text_and_full_pinyin(zh_shop):
    # "px": a Latin suggestion starting with "px" is a text-prefix match and
    # leads; then the initials spelled out (跑鞋), then longer initials.
    assert texts(zh_shop.suggest("px")) == ["pxc", "跑鞋", "跑鞋男"]
    assert texts(zh_shop.suggest("sj"))[0] == "手机"
    assert texts(zh_shop.suggest("yhkt")) == ["银行卡套"]


def test_mixed_input(zh_shop):
    assert texts(zh_shop.suggest("iphone手机k")) == ["iphone手机壳"]
    assert texts(zh_shop.suggest("iphone sj")) == ["iphone手机", "iphone手机壳"]
    # Latin input still completes the text itself, by weight.
    assert texts(zh_shop.suggest("iphone")) == ["iphone手机壳", "iphone手机"]


def test_characters_complete_as_text_not_by_sound(zh_shop):
    assert texts(zh_shop.suggest("手机")) == ["手机"]
    assert "首级" not in texts(zh_shop.suggest("手"))


def test_pinyin_hits_respect_limit_and_precede_fuzzy(zh_shop):
    assert texts(zh_shop.suggest("pao", limit=2)) == ["跑鞋男", "泡椒"]
    hits = zh_shop.suggest("paoxie", fuzzy=True)
    assert texts(hits)[:2] == ["跑鞋", "跑鞋男"]
    assert not any(h.fuzzy for h in hits[:2])


def test_pinyin_off_matches_nothing_by_sound(backend, settings):  # noqa: F811
    settings.SUGGESTIONS_PINYIN = "off"
    backend = get_backend()  # a setting change rebuilds backends
    backend.replace_suggestions(ZH)
    assert backend.suggest("paoxie") == []
    assert texts(backend.suggest("px")) == ["pxc"]


@pytest.mark.parametrize("prefix", ["hp", "hp la", "hp ", "gears of wra", "can", "st", "g", "佳能"])
def test_english_shop_answers_as_without_pinyin(backend, settings, prefix):  # noqa: F811
    backend.replace_suggestions(ENGLISH_SUGGESTIONS)
    answers = {fuzzy: backend.suggest(prefix, fuzzy=fuzzy) for fuzzy in (False, True)}
    settings.SUGGESTIONS_PINYIN = "off"
    backend = get_backend()  # a setting change rebuilds backends
    backend.replace_suggestions(ENGLISH_SUGGESTIONS)
    assert answers == {fuzzy: backend.suggest(prefix, fuzzy=fuzzy) for fuzzy in (False, True)}


# -- the setting ------------------------------------------------------------
def test_pinyin_setting_is_checked(settings):
    from suggestions.checks import check_pinyin

    settings.SUGGESTIONS_PINYIN = "maybe"
    assert [e.id for e in check_pinyin()] == ["shop_suggestions.E041"]
    settings.SUGGESTIONS_PINYIN = "on"
    assert check_pinyin() == []
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": {"BACKEND": "suggestions.recall.tantivy"},
        "plain": {"BACKEND": "tests.test_pinyin.PlainBackend"},
    }
    errors = check_pinyin()
    assert [e.id for e in errors] == ["shop_suggestions.E040"]
    assert errors[0].level == checks.ERROR and "'plain'" in errors[0].msg


from suggestions.recall import BaseRecallBackend  # noqa: E402


class PlainBackend(BaseRecallBackend):
    """A backend without the pinyin capability (for the system check)."""


# -- the demo import, end to end ----------------------------------------------
@pytest.mark.django_db
def test_zh_history_import_serves_pinyin_suggestions(tmp_path, settings):
    from io import StringIO

    from django.core.management import CommandError, call_command

    from suggestions import services
    from suggestions.conf import app_settings
    from suggestions.models import SearchEvent

    settings.SUGGESTIONS_ADAPTER = ""  # history only: no catalog phrases
    folder = tmp_path / "zh" / "multicpr"
    folder.mkdir(parents=True)
    (folder / "train.query.txt").write_text("1\t跑鞋\n2\t跑鞋男\n3\tiphone手机壳\n4\t银行卡套\n", encoding="utf-8")
    out = StringIO()
    call_command("catalog_import_zh_history", data_dir=tmp_path, no_progress=True, stdout=out, stderr=StringIO())
    shoppers = app_settings.MIN_DISTINCT_USERS  # one synthetic shopper each, to pass the gate
    assert SearchEvent.objects.count() == 4 * shoppers
    # Idempotent: a second import stores nothing.
    call_command("catalog_import_zh_history", data_dir=tmp_path, no_progress=True, stdout=StringIO(),
                 stderr=StringIO())
    assert SearchEvent.objects.count() == 4 * shoppers
    services.build_suggestions(include_catalog=False)
    assert [i.text for i in services.suggest("paoxie", limit=5).items][0] == "跑鞋"
    assert "跑鞋男" in [i.text for i in services.suggest("pao x", limit=5).items]
    assert [i.text for i in services.suggest("iphone sjk", limit=5).items] == ["iphone手机壳"]
    assert [i.text for i in services.suggest("yhkt", limit=5).items] == ["银行卡套"]
    with pytest.raises(CommandError, match="zh/multicpr"):
        call_command("catalog_import_zh_history", data_dir=tmp_path / "missing", stdout=StringIO())


def test_index_built_before_pinyin_keys_still_answers(backend, monkeypatch):  # noqa: F811
    """An index published by an older version (no pinyin fields) keeps
    answering text prefixes until the next publish adds the keys."""
    from suggestions.recall import elasticsearch as es_module
    from suggestions.recall import tantivy as tantivy_module

    old_es = {**es_module.SUGGESTIONS_MAPPING, "properties": {
        k: v for k, v in es_module.SUGGESTIONS_MAPPING["properties"].items()
        if k not in ("suggest_pinyin", "suggest_initials", "pinyin", "initials")}}
    monkeypatch.setitem(es_module._MAPPINGS, es_module.SUGGESTIONS, old_es)
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_text_field("key", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("text", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("source", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_float_field("weight", stored=True, fast=True)
    monkeypatch.setitem(tantivy_module._SCHEMAS, tantivy_module.SUGGESTIONS, sb.build())
    monkeypatch.setattr(es_module, "pinyin_enabled", lambda backend: False)
    monkeypatch.setattr(tantivy_module, "pinyin_enabled", lambda backend: False)
    backend.replace_suggestions(ZH)
    monkeypatch.undo()
    assert texts(backend.suggest("跑鞋")) == ["跑鞋男", "跑鞋"]
    assert texts(backend.suggest("px")) == ["pxc"]
    assert backend.suggest("paoxie") == []
    # The new version of the app, in a new process, publishes again.
    reset_backends()
    backend = get_backend()
    backend.replace_suggestions(ZH)
    assert texts(backend.suggest("paoxie")) == ["跑鞋", "跑鞋男"]
