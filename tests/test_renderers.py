"""The API's orjson renderer writes exactly DRF's bytes, or lets DRF write them."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer

from suggestions.api import views
from suggestions.api.renderers import FastJSONRenderer, api_renderer_classes

# JSON-shaped data without floats: byte for byte the same. Text includes
# U+2028/U+2029, surrogate-free astral characters, quotes, controls.
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["\u2028", "a\u2029b", "\"quoted\"", "back\\slash", "\x00\x1f", "打印机", "😀"])
_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | _text
_plain = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=5) | st.dictionaries(_text, kids, max_size=5),
                      max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_plain)
def test_plain_data_renders_to_drfs_bytes(data):
    assert FastJSONRenderer().render(data, "application/json") == JSONRenderer().render(data, "application/json")


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.floats(allow_nan=False, allow_infinity=False) | _scalars,
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_text, kids, max_size=4), max_leaves=15))
def test_floats_render_to_the_same_values(data):
    # Shortest round-trip reprs both, but spelled differently at times (1e+16 / 1e16).
    ours, drfs = FastJSONRenderer().render(data), JSONRenderer().render(data)
    assert ours == drfs if data is None else json.loads(ours) == json.loads(drfs)  # None renders as no body


@pytest.mark.parametrize("data", [
    {"at": datetime.datetime(2026, 12, 2, 10, 30, 1, 123456, tzinfo=datetime.UTC)},
    {"price": decimal.Decimal("19.90")},
    {"id": uuid.UUID("12345678123456781234567812345678")},
    {1: "int key"},
    {"big": 2**70},
    {"nested": [{"day": datetime.date(2026, 12, 2)}]},
])
def test_types_orjson_writes_its_own_way_are_rendered_by_drf(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_is_refused_as_drf_refuses_it(value):
    with pytest.raises(ValueError):
        JSONRenderer().render({"x": [value]})
    with pytest.raises(ValueError):
        FastJSONRenderer().render({"x": [value]})


def test_an_indent_asked_for_is_honoured():
    data = {"a": [1, "打印机"]}
    assert FastJSONRenderer().render(data, "application/json; indent=2") == JSONRenderer().render(
        data, "application/json; indent=2") == '{\n  "a": [\n    1,\n    "打印机"\n  ]\n}'.encode()
    assert FastJSONRenderer().render(data, "application/json", {"indent": 4}).startswith(b"{\n    ")


def test_the_views_use_it_in_the_place_of_drfs_json_renderer(settings):
    assert [cls.__name__ for cls in views.SuggestView.renderer_classes][:1] == ["FastJSONRenderer"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.BrowsableAPIRenderer", "rest_framework.renderers.JSONRenderer"]}
    assert api_renderer_classes() == [BrowsableAPIRenderer, FastJSONRenderer]


@pytest.mark.django_db
def test_a_suggest_answer_is_the_json_drf_would_write(client):
    response = client.get("/api/suggestions/suggest/", {"q": "lap"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert response.content == JSONRenderer().render(body)
    bad = client.get("/api/suggestions/suggest/", {"q": "x" * 5000})
    assert bad.status_code == 400 and bad.content == JSONRenderer().render(bad.json())
