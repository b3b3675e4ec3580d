"""Tests of suggestions.learning: model versions (promote, retire, roll back)."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from suggestions import learning
from suggestions.models import ModelVersion, ModelVersionStatus
from tests.factories_suggestions import ModelVersionFactory

pytestmark = pytest.mark.django_db


# --- model versions ---------------------------------------------------------------


def _active(kind: str) -> list[str]:
    return list(
        ModelVersion.objects.filter(kind=kind, status=ModelVersionStatus.ACTIVE).values_list(
            "version", flat=True
        )
    )


def test_promote_keeps_exactly_one_active_per_kind():
    v1 = ModelVersionFactory(kind="ranker", version="v1")
    v2 = ModelVersionFactory(kind="ranker", version="v2")
    other = ModelVersionFactory(kind="embedder", version="e1")
    learning.promote(other)

    learning.promote(v1)
    assert _active("ranker") == ["v1"]
    promoted = learning.promote(v2)

    assert promoted.status == ModelVersionStatus.ACTIVE
    assert promoted.promoted_at is not None
    assert _active("ranker") == ["v2"]
    v1.refresh_from_db()
    assert v1.status == ModelVersionStatus.RETIRED
    # Other kinds are not touched.
    assert _active("embedder") == ["e1"]


def test_promote_active_version_is_a_no_op():
    v1 = learning.promote(ModelVersionFactory(version="v1"))
    first = v1.promoted_at
    again = learning.promote(v1)
    assert again.promoted_at == first
    assert _active("ranker") == ["v1"]


def test_rollback_reactivates_previous_and_walks_back():
    t0 = timezone.now()
    v1 = learning.promote(ModelVersionFactory(version="v1"))
    v2 = learning.promote(ModelVersionFactory(version="v2"))
    v3 = learning.promote(ModelVersionFactory(version="v3"))
    # Distinct promotion times even on coarse clocks.
    for i, v in enumerate([v1, v2, v3]):
        ModelVersion.objects.filter(pk=v.pk).update(promoted_at=t0 + datetime.timedelta(minutes=i))

    assert learning.rollback("ranker").version == "v2"
    assert _active("ranker") == ["v2"]
    assert ModelVersion.objects.get(pk=v3.pk).status == ModelVersionStatus.RETIRED

    # A second rollback goes further back instead of returning to v3.
    assert learning.rollback("ranker").version == "v1"
    assert _active("ranker") == ["v1"]

    with pytest.raises(ValueError, match="No earlier promoted version"):
        learning.rollback("ranker")
    assert _active("ranker") == ["v1"]


def test_rollback_ignores_never_promoted_candidates():
    learning.promote(ModelVersionFactory(version="v1"))
    ModelVersionFactory(version="v2", status="retired")  # retired without ever being active
    with pytest.raises(ValueError):
        learning.rollback("ranker")
    assert _active("ranker") == ["v1"]


def test_rollback_without_active_version_reactivates_latest_retired():
    v1 = learning.promote(ModelVersionFactory(version="v1"))
    learning.retire(v1)
    assert _active("ranker") == []
    assert learning.rollback("ranker").version == "v1"
    assert _active("ranker") == ["v1"]


def test_retire():
    v1 = learning.promote(ModelVersionFactory(version="v1"))
    retired = learning.retire(v1)
    assert retired.status == ModelVersionStatus.RETIRED
    assert ModelVersion.objects.get(pk=v1.pk).status == ModelVersionStatus.RETIRED
