"""The keystroke query-string shortcut gives exactly Django's parameters, or declines."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.request import Request

from suggestions.api.querystring import plain_query

# Pieces a query string is made of, the awkward ones included: separators,
# percent escapes (valid, broken, of UTF-8 and of invalid UTF-8), '+', blanks,
# and raw bytes as a WSGI server hands them over (ISO-8859-1 characters).
_PIECES = st.sampled_from(
    ["q", "limit", "format", "=", "&", ";", "+", "%20", "%2", "%zz", "%C3%A9", "%E6%89%93", "%FF",
     "a", "b", "1", "8", " ", "é", "\xe6\x89\x93", "\xff", "%26", "%3D", "", "q=", "&q="]
)
_QUERY_STRINGS = st.lists(_PIECES, max_size=12).map("".join)


def _request(query_string: str):
    request = RequestFactory().get("/api/suggestions/suggest/")
    request.META["QUERY_STRING"] = query_string
    return request


def _django_params(query_string: str) -> dict[str, list[str]]:
    return {key: values for key, values in _request(query_string).GET.lists()}


@hsettings(max_examples=400, deadline=None)
@given(_QUERY_STRINGS)
def test_the_shortcut_gives_djangos_parameters_or_declines(query_string):
    params = plain_query(_request(query_string))
    django = _django_params(query_string)
    if params is None:
        # Declined: only for what the shortcut does not take (see the module).
        assert not query_string.isascii() or any(len(values) > 1 for values in django.values())
    else:
        assert {key: [value] for key, value in params.items()} == django


@pytest.mark.parametrize(
    "query_string, expected",
    [
        ("q=running%20shoes&limit=8", {"q": "running shoes", "limit": "8"}),
        ("q=running+shoes", {"q": "running shoes"}),
        ("q=%E6%89%93%E5%8D%B0%E6%9C%BA", {"q": "打印机"}),
        ("q=", {"q": ""}),
        ("", {}),
        ("q=a&q=b", None),  # repeated: Django's QueryDict decides which value counts
        ("q=é", None),  # raw non-ASCII: Django's byte decoding is not the identity
    ],
)
def test_examples(query_string, expected):
    assert plain_query(_request(query_string)) == expected


def test_a_query_dict_already_built_is_left_to_django():
    request = _request("q=tv")
    request.GET  # noqa: B018 - built, as a middleware might
    assert plain_query(request) is None


def test_another_request_encoding_is_left_to_django():
    request = _request("q=%E9")
    request.encoding = "iso-8859-1"
    assert plain_query(request) is None
    assert request.GET["q"] == "é"


def test_too_many_fields_are_left_to_djangos_error(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    assert plain_query(_request("a=1&b=2&c=3&d=4")) is None
    assert plain_query(_request("a=1&b=2&c=3")) == {"a": "1", "b": "2", "c": "3"}


def test_parsed_once_per_request_and_shared_with_the_drf_request():
    django_request = _request("q=tv")
    first = plain_query(Request(django_request))
    django_request.META["QUERY_STRING"] = "q=radio"
    assert plain_query(django_request) is first == {"q": "tv"}


@pytest.mark.django_db
def test_a_keystroke_request_builds_no_query_dict(client, monkeypatch):
    from django.http import request as http_request

    built = []
    original = http_request.QueryDict.__init__

    def counting(self, *args, **kwargs):
        built.append(args[0] if args else kwargs.get("query_string"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(http_request.QueryDict, "__init__", counting)
    response = client.get("/api/suggestions/suggest/", {"q": "tv", "limit": "5"})
    assert response.status_code == 200
    assert response.json()["query"] == "tv"
    assert not [qs for qs in built if qs], built  # only Django's empty POST/GET placeholders
