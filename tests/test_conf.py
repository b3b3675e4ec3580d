"""The app settings object: read once, forgotten when Django's settings change."""

from __future__ import annotations

from django.conf import settings
from django.test import override_settings

from suggestions.conf import AppSettings


class CountingSettings:
    """Stands in for django.conf.settings and counts the lookups."""

    def __init__(self, **values):
        self.values = values
        self.lookups = 0

    def __getattr__(self, name):
        self.lookups += 1
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def test_a_setting_is_looked_up_once_whether_the_host_sets_it_or_not(monkeypatch):
    default = AppSettings().DEFAULT_SUGGESTION_LIMIT
    fake = CountingSettings(SUGGESTIONS_MAX_QUERY_LENGTH=77)
    monkeypatch.setattr("suggestions.conf.settings", fake)
    app = AppSettings()
    assert [app.MAX_QUERY_LENGTH for _ in range(3)] == [77, 77, 77]
    assert fake.lookups == 1
    assert [app.DEFAULT_SUGGESTION_LIMIT for _ in range(3)] == [default] * 3
    assert fake.lookups == 2  # an unset setting is remembered as unset
    app.forget()
    fake.values["SUGGESTIONS_DEFAULT_SUGGESTION_LIMIT"] = 3
    assert app.DEFAULT_SUGGESTION_LIMIT == 3


def test_a_changed_setting_is_read_again():
    from suggestions.conf import app_settings

    before = app_settings.DEFAULT_SUGGESTION_LIMIT
    with override_settings(SUGGESTIONS_DEFAULT_SUGGESTION_LIMIT=before + 1):
        assert app_settings.DEFAULT_SUGGESTION_LIMIT == before + 1
    assert app_settings.DEFAULT_SUGGESTION_LIMIT == getattr(settings, "SUGGESTIONS_DEFAULT_SUGGESTION_LIMIT", before)
