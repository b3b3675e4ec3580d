"""Fixture placeholder; the ES-compatible test server fixture lives here."""
