"""Input validation and output shapes of the API.

Every request parameter goes through a serializer here; the views never read
``request.query_params`` or ``request.data`` themselves. The one shortcut is
:func:`plain_suggest_params`, for the request sent on every keystroke: it
accepts only what the serializer would accept unchanged and hands everything
else to it. Limits that hosts can
configure (query length, page sizes, batch sizes) are read from
:data:`~suggestions.conf.app_settings` when a serializer is instantiated, not at
import, so ``override_settings`` and late configuration both work — and the
OpenAPI schema shows the limits in force.

Output serializers read the dataclasses returned by :mod:`suggestions.services`
by attribute; they also describe the responses in the OpenAPI schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from ..conf import app_settings
from ..models import SearchOrigin
from ..text import normalize_query

#: Results beyond this offset are never served: deep paging is a scraping
#: pattern, costs the engine the most, and no shopper pages that far.
MAX_SEARCH_RESULT_WINDOW = 10_000

#: Largest number of brand / product type values one search may filter on.
MAX_FILTER_VALUES = 20

#: Largest position a click or suggestion may report (0-based).
MAX_POSITION = 99

#: Largest number of suggestion texts one impression may carry.
MAX_IMPRESSION_SUGGESTIONS = 50

#: Length limit of stored texts (the models' ``CharField(max_length=255)``).
MAX_TEXT_LENGTH = 255

#: Length limit of a product id (``ProductClick.object_id``).
MAX_PRODUCT_ID_LENGTH = 64

# Whitespace controls are harmless (normalisation turns them into spaces);
# every other control character (NUL, ESC, DEL, C1 …) is rejected: they are
# never typed by a shopper and only break logs, indexes and terminals. Written
# as a validator so that the OpenAPI schema states the rule (``pattern``).
_NO_CONTROLS = RegexValidator(
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$",
    message="Control characters are not allowed.",
    code="control_characters",
)


class TextField(serializers.CharField):
    """A stripped string without control characters.

    Only JSON strings are accepted: DRF's ``CharField`` turns numbers into
    text (``0`` → ``"0"``), which the schema (``type: string``) does not
    allow. Control characters other than tab and line breaks are refused by
    a validator, which drf-spectacular shows as the field's ``pattern``.
    """

    default_error_messages = {
        "not_a_string": "Not a valid string.",
    }

    def __init__(self, **kwargs: Any) -> None:
        # Not blank means at least one character: say so in the schema too.
        if not kwargs.get("allow_blank", False):
            kwargs.setdefault("min_length", 1)
        super().__init__(**kwargs)
        # One rule and one message for NUL and the other controls.
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.validators.append(_NO_CONTROLS)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter that may be left out but not left empty.

    DRF treats ``?limit=`` on an optional field as absent (the default is
    used); an empty value is a client bug, so it gets the usual
    "A valid integer is required." instead.
    """

    def get_value(self, dictionary: Any) -> Any:
        if self.field_name in dictionary and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


class BoundedListField(serializers.ListField):
    """A ``ListField`` that checks ``max_length`` before validating any item.

    DRF validates every item first and the length after: a 20,000-item list
    cost 20,000 item validations before its 400. Here the length is checked
    first, so a list's validation costs at most ``max_length`` items.
    """

    def to_internal_value(self, data: Any) -> list[Any]:
        if (
            self.max_length is not None
            and isinstance(data, list)
            and len(data) > self.max_length
        ):
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


def query_field(**kwargs: Any) -> TextField:
    """A query field limited to ``SUGGESTIONS_MAX_QUERY_LENGTH`` characters."""
    return TextField(max_length=app_settings.MAX_QUERY_LENGTH, **kwargs)


# -- suggest ------------------------------------------------------------------


class SuggestQuerySerializer(serializers.Serializer):
    """Query parameters of ``GET suggest/``."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # Built per instance so that the configured limits are the ones in force.
        return {
            "q": query_field(
                min_length=1, help_text="What the shopper has typed so far (required, not blank)."
            ),
            "limit": QueryIntegerField(
                required=False,
                default=app_settings.DEFAULT_SUGGESTION_LIMIT,
                min_value=1,
                max_value=app_settings.MAX_SUGGESTION_LIMIT,
                help_text="Number of suggestions to return.",
            ),
        }


_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def plain_suggest_params(query_params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The validated parameters of a plain suggest request, without a serializer.

    A suggest request is sent on every keystroke, and instantiating
    :class:`SuggestQuerySerializer` (its fields are built per instance) costs
    more than answering from the cache. A request whose parameters are ``q``
    (a non-blank string within the length limit, without control characters)
    and optionally ``limit`` (ASCII digits within bounds) gets here exactly the
    data the serializer would give. Anything else returns None: the serializer
    then validates it and words the 400.
    """
    if not 1 <= len(query_params) <= 2:
        return None
    q = _plain_text(query_params, "q")
    if q is None:
        return None
    raw_limit = query_params.get("limit")
    if raw_limit is None:
        if len(query_params) != 1:
            return None
        return {"q": q, "limit": app_settings.DEFAULT_SUGGESTION_LIMIT}
    limit = _plain_positive(raw_limit)
    if limit is None or limit > app_settings.MAX_SUGGESTION_LIMIT:
        return None
    return {"q": q, "limit": limit}


class SuggestionItemSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="Normalised suggestion text.")
    kind = serializers.ChoiceField(
        choices=["recent", "pinned", "suggestion"],
        help_text="`recent`: one of the shopper's own recent searches; `pinned`: placed by a moderator; `suggestion`: ranked completion.",
    )
    source = serializers.ChoiceField(
        choices=["history", "catalog", "generated", "manual", "recent"],
        help_text="Where the suggestion came from.",
    )
    fuzzy = serializers.BooleanField(help_text="True when matched with one typo in the prefix.")


class SuggestResponseSerializer(serializers.Serializer):
    query = serializers.CharField(source="prefix", help_text="The normalised prefix.")
    request_id = serializers.CharField(
        help_text="Id of this answer; send it back with impression and click events."
    )
    suggestions = SuggestionItemSerializer(source="items", many=True)
    degraded = serializers.BooleanField(
        help_text="True when the cache or the search engine was unavailable and the answer may be incomplete."
    )
    degraded_reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=["cache", "recall"]),
        help_text="Why `degraded` is true (empty when it is false): `cache`, the shared cache; "
        "`recall`, the search engine (the answer then comes from the database).",
    )


# -- search -------------------------------------------------------------------


class SearchQuerySerializer(serializers.Serializer):
    """Query parameters of ``GET search/``."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # Built per instance so that the configured limits are the ones in force.
        return {
            "q": query_field(
                required=False,
                allow_blank=True,
                default="",
                help_text=(
                    "Search text. May be empty (or left out) only when a filter is given: "
                    "`q`, `brand`, `product_type`, `min_price` or `max_price`, at least one "
                    "is required. Text with no letters or digits (`!!!`) matches nothing."
                ),
            ),
            "page": QueryIntegerField(
                required=False, default=1, min_value=1, help_text="1-based page number."
            ),
            "page_size": QueryIntegerField(
                required=False,
                default=app_settings.SEARCH_PAGE_SIZE,
                min_value=1,
                max_value=app_settings.MAX_SEARCH_PAGE_SIZE,
                help_text="Results per page.",
            ),
            "brand": BoundedListField(
                child=TextField(max_length=100, allow_blank=True),
                required=False,
                default=list,
                max_length=MAX_FILTER_VALUES,
                help_text="Only these brands (repeat the parameter for several).",
            ),
            "product_type": BoundedListField(
                child=TextField(max_length=100, allow_blank=True),
                required=False,
                default=list,
                max_length=MAX_FILTER_VALUES,
                help_text="Only these product types (repeat the parameter for several).",
            ),
            "min_price": serializers.FloatField(
                required=False,
                allow_null=True,
                default=None,
                min_value=0,
                help_text="Lowest price, inclusive.",
            ),
            "max_price": serializers.FloatField(
                required=False,
                allow_null=True,
                default=None,
                min_value=0,
                help_text="Highest price, inclusive.",
            ),
            "origin": serializers.ChoiceField(
                choices=SearchOrigin.choices,
                required=False,
                default=SearchOrigin.TYPED,
                help_text="How the search was started (recorded in history).",
            ),
            "exact": serializers.BooleanField(
                required=False,
                default=False,
                help_text=(
                    "Search the text exactly as typed: no spelling correction "
                    "(the \"search instead for …\" link of a did-you-mean answer)."
                ),
            ),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Blank values come from HTML forms ("any brand"); they are no filter.
        attrs["brand"] = [b for b in attrs["brand"] if b]
        attrs["product_type"] = [t for t in attrs["product_type"] if t]
        has_filter = bool(
            attrs["brand"]
            or attrs["product_type"]
            or attrs["min_price"] is not None
            or attrs["max_price"] is not None
        )
        if not attrs["q"] and not has_filter:
            raise serializers.ValidationError({"q": ["Enter a search text or choose a filter."]})
        if (
            attrs["min_price"] is not None
            and attrs["max_price"] is not None
            and attrs["min_price"] > attrs["max_price"]
        ):
            raise serializers.ValidationError(
                {"max_price": ["Must be greater than or equal to min_price."]}
            )
        if attrs["page"] * attrs["page_size"] > MAX_SEARCH_RESULT_WINDOW:
            raise serializers.ValidationError(
                {
                    "page": [
                        f"Only the first {MAX_SEARCH_RESULT_WINDOW} results can be paged through; refine the search."
                    ]
                }
            )
        return attrs


def _plain_text(query_params: Mapping[str, Any], name: str) -> str | None:
    return _plain_event_text(query_params.get(name), app_settings.MAX_QUERY_LENGTH)


def _plain_positive(value: Any) -> int | None:
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 6):
        return None
    number = int(value)
    return number if number >= 1 else None


#: Parameters a plain search request may carry (see :func:`plain_search_params`).
_PLAIN_SEARCH_PARAMS = frozenset({"q", "page", "origin"})


def plain_search_params(query_params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The validated parameters of a plain search request, without a serializer.

    What the storefront sends for a typed or chosen search: a non-blank ``q``
    and optionally ``page`` and ``origin``, each given once. Such a request
    gets exactly the data :class:`SearchQuerySerializer` would give; anything
    else (filters, ``page_size``, ``exact``, a repeated or unknown parameter)
    returns None and goes through the serializer.
    """
    keys = set(query_params)
    if "q" not in keys or not keys <= _PLAIN_SEARCH_PARAMS:
        return None
    getlist = getattr(query_params, "getlist", None)
    if getlist is not None and any(len(getlist(k)) != 1 for k in keys):
        return None
    q = _plain_text(query_params, "q")
    if q is None:
        return None
    page = 1
    if "page" in keys:
        page = _plain_positive(query_params.get("page"))
        if page is None:
            return None
    page_size = app_settings.SEARCH_PAGE_SIZE
    if page * page_size > MAX_SEARCH_RESULT_WINDOW:
        return None
    origin = query_params.get("origin", SearchOrigin.TYPED)
    if origin not in SearchOrigin.values:
        return None
    return {"q": q, "page": page, "page_size": page_size, "brand": [], "product_type": [], "min_price": None,
            "max_price": None, "origin": origin, "exact": False}


class ProductResultSerializer(serializers.Serializer):
    id = serializers.CharField(source="document.id", help_text="Product id (primary key as text).")
    title = serializers.CharField(source="document.title")
    brand = serializers.CharField(source="document.brand")
    product_type = serializers.CharField(source="document.product_type")
    price = serializers.FloatField(source="document.price", allow_null=True)
    url = serializers.CharField(source="document.url")
    image_url = serializers.CharField(source="document.image_url")
    score = serializers.FloatField(help_text="Relevance score (comparable within one answer only).")
    position = serializers.IntegerField(
        help_text="0-based position across pages; send it back with product_click events."
    )


class FacetValueSerializer(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField()


class FacetsSerializer(serializers.Serializer):
    brand = FacetValueSerializer(many=True, help_text="Matches per brand, most frequent first.")


# -- understanding ------------------------------------------------------------


class EntitySerializer(serializers.Serializer):
    label = serializers.CharField(help_text="Entity label, e.g. `brand`, `product_type`, `price_range`.")
    text = serializers.CharField(help_text="The span as it appears in the normalised query.")
    start = serializers.IntegerField(help_text="Offset of the span's first character in `query`.")
    end = serializers.IntegerField(help_text="Offset just past the span.")
    value = serializers.CharField(help_text="Normalised value (catalog spelling, `<=100` for prices …).")
    score = serializers.FloatField()


class UnderstandingSerializer(serializers.Serializer):
    query = serializers.CharField(help_text="The normalised query the offsets refer to.")
    language = serializers.CharField(help_text="`en`, `zh` or `mixed`.")
    intent = serializers.CharField()
    confidence = serializers.FloatField()
    entities = EntitySerializer(many=True)
    source = serializers.CharField(help_text="`rules`, `label` or `model:<version>`.")


class UnderstandQuerySerializer(serializers.Serializer):
    """Query parameters of ``GET understand/``."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"q": query_field(help_text="The query to understand (required, not blank).")}

    def validate_q(self, value: str) -> str:
        if not normalize_query(value):
            raise serializers.ValidationError("The query has no words once normalised.")
        return value


class RefinementSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The search to offer (normalised).")
    source = serializers.ChoiceField(
        choices=["generated", "history", "catalog", "manual", "spelling", "query"],
        help_text="Where it comes from: an approved suggestion's source (`generated`: proposed by the "
        "generator and approved by a merchandiser), `spelling` (the spelling correction of the query) or "
        "`query` (the query less one word).",
    )
    kind = serializers.ChoiceField(
        choices=["refinement", "rewrite"],
        help_text="`refinement`: narrows a query that found products; `rewrite`: replaces a query that found none.",
    )


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    request_id = serializers.CharField(
        help_text="Id of this answer; send it back with product_click events."
    )
    total = serializers.IntegerField(help_text="Number of matching products.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = ProductResultSerializer(many=True)
    facets = serializers.SerializerMethodField()
    degraded = serializers.BooleanField(
        help_text="True when the search engine was unavailable and results come from a fallback (or are empty), "
        "or when the task queue was unavailable (the search is recorded; its understanding by the model comes later)."
    )
    degraded_reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=["recall", "task_queue", "dense"]),
        help_text="Why `degraded` is true (empty when it is false): `recall`, the search engine; "
        "`task_queue`, the broker of the background workers; `dense`, dense recall (results from BM25 alone).",
    )
    understanding = UnderstandingSerializer(
        allow_null=True, help_text="How the query was understood (price filters and boosts come from it)."
    )
    corrected_query = serializers.CharField(
        allow_blank=True,
        help_text="Did-you-mean: when not empty, `query` found (almost) nothing and the results are for "
        "this spelling correction of it (show \"Showing results for <corrected_query>; search instead for "
        "<query>\", the latter linking to the same search with `exact=true`). Empty when the results are "
        "for `query` itself.",
    )

    refinements = RefinementSerializer(
        many=True,
        help_text="Searches to offer with this answer, best first (at most `SUGGESTIONS_REFINEMENTS_LIMIT`). "
        "With results: refinements of the query, shown as chips above them (`kind` `refinement`). Without: "
        "rewrites that find products (\"No results for <query>; try …\", `kind` `rewrite`). A chosen one "
        "is searched with `origin=refinement`; report the list with a `refinement_impression` event and the "
        "choice with a `refinement_click`, both with this answer's `request_id`.",
    )

    @extend_schema_field(FacetsSerializer)
    def get_facets(self, obj: Any) -> dict[str, list[dict[str, Any]]]:
        counts = sorted(obj.brand_counts.items(), key=lambda item: (-item[1], item[0]))
        return {"brand": [{"value": value, "count": count} for value, count in counts]}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def search_response(page: Any) -> dict[str, Any]:
    """``SearchResponseSerializer(page).data``, built without the serializer.

    The nested serializer (twenty results, their fields, the understanding)
    cost more CPU than the search itself; :class:`SearchResponseSerializer`
    still documents the shape, and a test holds the two equal.
    """
    understood = page.understanding
    counts = sorted(page.brand_counts.items(), key=lambda item: (-item[1], item[0]))
    return {
        "query": _text(page.query),
        "request_id": _text(page.request_id),
        "total": int(page.total),
        "page": int(page.page),
        "page_size": int(page.page_size),
        "results": [
            {
                "id": _text(r.document.id), "title": _text(r.document.title), "brand": _text(r.document.brand),
                "product_type": _text(r.document.product_type), "price": _number(r.document.price),
                "url": _text(r.document.url), "image_url": _text(r.document.image_url),
                "score": _number(r.score), "position": int(r.position),
            }
            for r in page.results
        ],
        "facets": {"brand": [{"value": value, "count": count} for value, count in counts]},
        "degraded": bool(page.degraded),
        "degraded_reasons": [str(reason) for reason in page.degraded_reasons],
        "understanding": None if understood is None else {
            "query": _text(understood.query), "language": _text(understood.language),
            "intent": _text(understood.intent), "confidence": _number(understood.confidence),
            "entities": [
                {"label": _text(e.label), "text": _text(e.text), "start": int(e.start), "end": int(e.end),
                 "value": _text(e.value), "score": _number(e.score)}
                for e in understood.entities
            ],
            "source": _text(understood.source),
        },
        "corrected_query": _text(page.corrected_query),
        "refinements": [{"text": _text(r.text), "source": str(r.source), "kind": str(r.kind)}
                        for r in page.refinements],
    }


# -- events -------------------------------------------------------------------


class _EventSerializer(serializers.Serializer):
    request_id = serializers.UUIDField(help_text="`request_id` of the answer the event refers to.")

    def validate_request_id(self, value) -> str:
        # Services and signals deal in the hex form that the answers carry.
        return value.hex


class ImpressionEventSerializer(_EventSerializer):
    """A suggestion list was shown."""

    type = serializers.ChoiceField(choices=["impression"])
    suggestions = BoundedListField(
        child=TextField(max_length=MAX_TEXT_LENGTH),
        max_length=MAX_IMPRESSION_SUGGESTIONS,
        help_text="Suggestion texts in the order shown.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["prefix"] = query_field(help_text="What the shopper had typed.")
        return fields


class SuggestionClickEventSerializer(_EventSerializer):
    """A suggestion was chosen."""

    type = serializers.ChoiceField(choices=["suggestion_click"])
    suggestion = TextField(max_length=MAX_TEXT_LENGTH, help_text="The chosen suggestion.")
    position = serializers.IntegerField(
        min_value=0, max_value=MAX_POSITION, help_text="0-based position in the shown list."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["prefix"] = query_field(help_text="What the shopper had typed.")
        return fields


class ProductClickEventSerializer(_EventSerializer):
    """A search result was clicked."""

    type = serializers.ChoiceField(choices=["product_click"])
    product_id = TextField(
        min_length=1,
        max_length=MAX_PRODUCT_ID_LENGTH,
        help_text="`id` of the clicked result (a string). A click on a product the shop "
        "does not know is not recorded (see `accepted`).",
    )
    position = serializers.IntegerField(
        min_value=0, max_value=MAX_POSITION, help_text="0-based position across pages."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # A filter-only search has an empty query; its clicks are still events.
        fields["query"] = query_field(allow_blank=True, help_text="The search text.")
        return fields


class RefinementImpressionEventSerializer(_EventSerializer):
    """Refinement chips (or rewrites) of a search answer were shown."""

    type = serializers.ChoiceField(choices=["refinement_impression"])
    refinements = BoundedListField(
        child=TextField(max_length=MAX_TEXT_LENGTH),
        max_length=MAX_IMPRESSION_SUGGESTIONS,
        help_text="`refinements[].text` of the search answer, in the order shown.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["query"] = query_field(help_text="`query` of the search answer.")
        return fields


class RefinementClickEventSerializer(_EventSerializer):
    """A refinement chip (or rewrite) was chosen."""

    type = serializers.ChoiceField(choices=["refinement_click"])
    refinement = TextField(max_length=MAX_TEXT_LENGTH, help_text="The chosen refinement's text.")
    position = serializers.IntegerField(
        min_value=0, max_value=MAX_POSITION, help_text="0-based position among the refinements shown."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["query"] = query_field(help_text="`query` of the search answer.")
        return fields


#: Event serializers by the value of the ``type`` discriminator.
EVENT_SERIALIZERS: dict[str, type[serializers.Serializer]] = {
    "impression": ImpressionEventSerializer,
    "suggestion_click": SuggestionClickEventSerializer,
    "product_click": ProductClickEventSerializer,
    "refinement_impression": RefinementImpressionEventSerializer,
    "refinement_click": RefinementClickEventSerializer,
}


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="Event",
        serializers=EVENT_SERIALIZERS,
        resource_type_field_name="type",
        many=False,
    )
)
class EventField(serializers.Field):
    """One event, validated by the serializer its ``type`` names."""

    default_error_messages = {
        "not_an_object": "Expected an object with a type, but got {input_type}.",
        "unknown_type": "Unknown event type {value!r}; expected one of: {choices}.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        self.error_messages["not_an_object"].format(input_type=type(data).__name__)
                    ]
                }
            )
        if "type" not in data:
            raise serializers.ValidationError({"type": [self.error_messages["required"]]})
        event_type = data["type"]
        serializer_class = (
            EVENT_SERIALIZERS.get(event_type) if isinstance(event_type, str) else None
        )
        if serializer_class is None:
            message = self.error_messages["unknown_type"].format(
                value=event_type, choices=", ".join(EVENT_SERIALIZERS)
            )
            raise serializers.ValidationError({"type": [message]})
        # One serializer per event type and batch: building its fields (a deep
        # copy of the declared ones) for every event cost more than validating it.
        children = self.__dict__.setdefault("_children", {})
        serializer = children.get(event_type)
        if serializer is None:
            serializer = children[event_type] = serializer_class()
        try:
            return dict(serializer.run_validation(data))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(exc.detail) from None

    def to_representation(self, value: Any) -> Any:
        return value


class EventsBatchSerializer(serializers.Serializer):
    """Body of ``POST events/``. One invalid event rejects the whole batch;
    errors are keyed by the index of the bad event."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # Built per instance so that the configured batch limit is the one in force.
        return {
            "events": BoundedListField(
                child=EventField(),
                allow_empty=False,
                max_length=app_settings.MAX_EVENTS_PER_BATCH,
                help_text="Events in the order they happened.",
            ),
        }


_HEX = frozenset("0123456789abcdefABCDEF")


def _plain_uuid_hex(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if len(value) == 36 and value[8] == value[13] == value[18] == value[23] == "-":
        digits = value.replace("-", "")
    elif len(value) == 32:
        digits = value
    else:
        return None
    if len(digits) != 32 or not _HEX.issuperset(digits):
        return None
    return digits.lower()


def _plain_event_text(value: Any, max_length: int, *, blank: bool = False) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if (not value and not blank) or len(value) > max_length or _CONTROL_CHARACTER.search(value):
        return None
    return value


def _plain_texts(value: Any) -> list[str] | None:
    if type(value) is not list or len(value) > MAX_IMPRESSION_SUGGESTIONS:
        return None
    texts = [_plain_event_text(v, MAX_TEXT_LENGTH) for v in value]
    return None if any(t is None for t in texts) else texts


def _plain_position(value: Any) -> int | None:
    return value if type(value) is int and 0 <= value <= MAX_POSITION else None


#: Fields of each event type and their checks (``check(value, query_length)``), as
#: the type's serializer declares them.
_PLAIN_EVENT_FIELDS: dict[str, tuple] = {
    "impression": (("suggestions", lambda v, _n: _plain_texts(v)),
                   ("prefix", lambda v, n: _plain_event_text(v, n))),
    "suggestion_click": (("suggestion", lambda v, _n: _plain_event_text(v, MAX_TEXT_LENGTH)),
                         ("position", lambda v, _n: _plain_position(v)),
                         ("prefix", lambda v, n: _plain_event_text(v, n))),
    "product_click": (("product_id", lambda v, _n: _plain_event_text(v, MAX_PRODUCT_ID_LENGTH)),
                      ("position", lambda v, _n: _plain_position(v)),
                      ("query", lambda v, n: _plain_event_text(v, n, blank=True))),
    "refinement_impression": (("refinements", lambda v, _n: _plain_texts(v)),
                              ("query", lambda v, n: _plain_event_text(v, n))),
    "refinement_click": (("refinement", lambda v, _n: _plain_event_text(v, MAX_TEXT_LENGTH)),
                         ("position", lambda v, _n: _plain_position(v)),
                         ("query", lambda v, n: _plain_event_text(v, n))),
}


def _plain_event(event: Any, query_length: int) -> dict[str, Any] | None:
    if type(event) is not dict:
        return None
    kind = event.get("type")
    request_id = _plain_uuid_hex(event.get("request_id"))
    if request_id is None:
        return None
    out: dict[str, Any] = {"request_id": request_id, "type": kind}
    fields = _PLAIN_EVENT_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return None
    for name, check in fields:
        out[name] = check(event.get(name), query_length)
    return None if any(v is None for v in out.values()) else out


def plain_events(data: Any) -> list[dict[str, Any]] | None:
    """The validated events of a plain ``POST events/`` batch, without a serializer.

    What the storefront's script sends: ``{"events": [...]}`` of well-formed
    events (ids as 32 hex digits or hyphenated, texts as strings within their
    limits, positions as JSON integers). Such a batch gets exactly the data
    :class:`EventsBatchSerializer` would give; any other body returns None and
    goes through the serializer, which words the 400.
    """
    if type(data) is not dict:
        return None
    events = data.get("events")
    if type(events) is not list or not 1 <= len(events) <= app_settings.MAX_EVENTS_PER_BATCH:
        return None
    query_length = app_settings.MAX_QUERY_LENGTH
    out = []
    for event in events:
        plain = _plain_event(event, query_length)
        if plain is None:
            return None
        out.append(plain)
    return out


class EventsAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(
        help_text="Number of events recorded: the batch's events less the product clicks "
        "on products the shop does not know (`ignored`)."
    )
    ignored = serializers.IntegerField(
        help_text="Product clicks not recorded because the shop has no product of that id."
    )


# -- history and trending ----------------------------------------------------


class HistoryEntrySerializer(serializers.Serializer):
    query = serializers.CharField()
    created_at = serializers.DateTimeField()
    origin = serializers.ChoiceField(choices=SearchOrigin.choices)


class HistoryResponseSerializer(serializers.Serializer):
    results = HistoryEntrySerializer(
        many=True, help_text="The shopper's own searches, newest first."
    )


class HistoryDeletedSerializer(serializers.Serializer):
    deleted = serializers.IntegerField(help_text="Number of searches erased.")


class TrendingQuerySerializer(serializers.Serializer):
    """Query parameters of ``GET trending/``."""

    limit = QueryIntegerField(
        required=False,
        default=10,
        min_value=1,
        max_value=50,
        help_text="Number of queries to return.",
    )


class TrendingItemSerializer(serializers.Serializer):
    text = serializers.CharField()
    searches = serializers.IntegerField(help_text="Searches in the trending window.")


class TrendingResponseSerializer(serializers.Serializer):
    results = TrendingItemSerializer(many=True)
