"""The real Best Buy search log: import as it is, mine, complete and fix typos.

Reads ``../shared/data/bestbuy/train.csv`` (or ``$SHOP_DATA_DIR/bestbuy/train.csv``);
without it the tests skip locally and fail under ``CI=true``. Not shipped with the project.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.management import call_command

from suggestions import services
from suggestions.models import SearchEvent
from tests.plugins.services import require_data

DATA_DIR = Path(os.environ.get("SHOP_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
BESTBUY = DATA_DIR / "bestbuy" / "train.csv"

pytestmark = [pytest.mark.django_db, pytest.mark.data, pytest.mark.slow]


@pytest.fixture
def bestbuy_imported():
    require_data(BESTBUY)
    call_command("suggestions_import_history", str(BESTBUY), "--no-progress")
    call_command("suggestions_build", "--no-catalog", "--no-progress")


def test_import_build_complete_fix_typos_and_reimport(bestbuy_imported):
    assert SearchEvent.objects.count() > 40_000
    cal = [i.text for i in services.suggest("cal", limit=10).items]
    assert cal[0] == "call of duty"
    assert sum(t.startswith("call of duty") for t in cal) >= 3, cal
    wra = services.suggest("gears of wra", limit=5).items
    assert wra and wra[0].text.startswith("gears of war") and wra[0].fuzzy
    # Importing the same file again stores nothing twice.
    before = SearchEvent.objects.count()
    call_command("suggestions_import_history", str(BESTBUY), "--no-progress")
    assert SearchEvent.objects.count() == before
