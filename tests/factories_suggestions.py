"""Factories for the moderation and admin tests (suggestions, terms, versions, logs)."""

from __future__ import annotations

import uuid

import factory
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from suggestions.models import (
    BlockedTerm,
    ModelVersion,
    ProductClick,
    QueryDailyStat,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
)


class SuggestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Suggestion

    text = factory.Sequence(lambda n: f"suggestion {n}")
    source = "history"
    status = "approved"
    weight = factory.Sequence(lambda n: 100.0 - n)
    searches = 10
    distinct_users = 5


class BlockedTermFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BlockedTerm

    pattern = factory.Sequence(lambda n: f"blocked{n}")
    kind = "word"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    kind = "ranker"
    version = factory.Sequence(lambda n: f"v{n}")
    artefact_uri = factory.LazyAttribute(lambda o: f"models/{o.kind}/{o.version}")
    metrics = factory.LazyFunction(lambda: {"ndcg@10": 0.41234, "mrr": 0.3})
    status = "candidate"


class SearchEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SearchEvent

    query = factory.Sequence(lambda n: f"Query {n}")
    normalized_query = factory.LazyAttribute(lambda o: o.query.lower())
    results_count = 3
    actor_hash = "a" * 64
    identified = True


class SuggestionImpressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuggestionImpression

    request_id = factory.LazyFunction(uuid.uuid4)
    prefix = "ni"
    suggestions = factory.LazyFunction(lambda: ["nike", "nike air"])


class SuggestionClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuggestionClick

    request_id = factory.LazyFunction(uuid.uuid4)
    prefix = "ni"
    suggestion = "nike"
    position = 0


class ProductClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductClick

    request_id = factory.LazyFunction(uuid.uuid4)
    query = "nike"
    # Any installed model will do: products are (content type, text id).
    content_type = factory.LazyFunction(lambda: ContentType.objects.get_for_model(Suggestion))
    object_id = "42"
    position = 1


class QueryDailyStatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QueryDailyStat

    date = factory.LazyFunction(lambda: timezone.localdate())
    normalized_query = factory.Sequence(lambda n: f"query {n}")
    searches = 7
