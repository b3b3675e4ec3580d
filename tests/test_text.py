from __future__ import annotations

import pytest

from suggestions.text import hash_identifier, looks_private, normalize_query


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  HP  LaserJet ", "hp laserjet"),
        ("ＨＰ　ｌａｓｅｒ", "hp laser"),  # full-width folds to ASCII
        ("usb-c (3.5mm), cable!", "usb-c 3.5mm cable"),
        ("startech.com", "startech.com"),
        ("跑鞋 男", "跑鞋 男"),
        ("", ""),
    ],
)
def test_normalize_query(raw, expected):
    assert normalize_query(raw) == expected
    assert normalize_query(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "john.doe@example.com",
        "call me +44 20 7946 0958",
        "0176-123-45678",
        "4111 1111 1111 1111",  # a Luhn-valid test card number
        "card 5500-0000-0000-0004",
        "555-123-4567",
        "+49 30 12345678",
        "0049 30 1234567",
        "555 123 4567",
    ],
)
def test_private_queries_are_detected(text):
    assert looks_private(text)


@pytest.mark.parametrize(
    "text",
    ["hp 85", "006r90321", "ce285a toner", "call of duty 4", "cat5e 2.0m", "0095205603217", "1200 x 1200 dpi",
     "2371074 2126339 2126108", "laborday ipod mp3 20110902"],
)
def test_product_queries_are_not_private(text):
    assert not looks_private(text)


def test_hash_identifier_is_salted_and_stable():
    assert hash_identifier("u1", "a") == hash_identifier("u1", "a")
    assert hash_identifier("u1", "a") != hash_identifier("u1", "b")
    assert "u1" not in hash_identifier("u1", "a")


def test_request_ids_are_distinct_version_4_uuids():
    import uuid

    from suggestions.text import new_request_id

    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, value)
    # Every other bit is random: each of the 122 free bits is set in some id and clear in another.
    free = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
    ones = zeros = 0
    for value in ids:
        number = int(value, 16)
        ones |= number
        zeros |= ~number
    assert ones & free == free and zeros & free == free
