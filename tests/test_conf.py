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


def test_a_remembered_value_is_a_plain_attribute_until_forgotten(monkeypatch):
    fake = CountingSettings(SUGGESTIONS_MAX_QUERY_LENGTH=77, BASE_DIR="/srv/shop")
    monkeypatch.setattr("suggestions.conf.settings", fake)
    app = AppSettings()
    assert app.MAX_QUERY_LENGTH == 77
    assert app.__dict__["MAX_QUERY_LENGTH"] == 77
    assert app.DATA_DIR == "/srv/shop/var/suggestions"
    fake.values["SUGGESTIONS_MAX_QUERY_LENGTH"] = 78
    fake.values["BASE_DIR"] = "/srv/other"
    assert (app.MAX_QUERY_LENGTH, app.DATA_DIR) == (77, "/srv/shop/var/suggestions")
    app.forget()
    assert (app.MAX_QUERY_LENGTH, app.DATA_DIR) == (78, "/srv/other/var/suggestions")


def test_a_mutable_value_is_never_shared_between_readers():
    from suggestions.conf import app_settings

    margins = app_settings.PROMOTION_MARGIN
    margins["understanding"] = 99.0
    assert app_settings.PROMOTION_MARGIN["understanding"] != 99.0


def test_a_change_of_a_setting_the_defaults_derive_from_is_seen(settings, tmp_path):
    from suggestions.conf import app_settings

    if hasattr(settings, "SUGGESTIONS_DATA_DIR"):
        del settings.SUGGESTIONS_DATA_DIR
    app_settings.DATA_DIR  # noqa: B018 - remembered
    settings.BASE_DIR = tmp_path
    assert app_settings.DATA_DIR == f"{tmp_path}/var/suggestions"
