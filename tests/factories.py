"""Factories for the demo catalog (and, later, other shared test data).

Keep one section per app; factories build valid rows with unique keys and
readable titles so searches in tests can target them.
"""

from __future__ import annotations

from decimal import Decimal

import factory

from catalog.models import Product

# --- catalog -----------------------------------------------------------------


class ProductFactory(factory.django.DjangoModelFactory):
    """A toner cartridge with a unique model code and Icecat-style id."""

    class Meta:
        model = Product

    brand = "Acme"
    model_number = factory.Sequence(lambda n: f"AC{n:05d}X")
    product_type = "toner cartridge"
    title = factory.LazyAttribute(lambda o: f"{o.brand} {o.model_number} {o.product_type} Original Black 1 pc(s)")
    price = Decimal("49.95")
    description = "Toner for Acme office printers"
    attributes = factory.LazyFunction(lambda: {"printing_colours": "Black", "quantity_per_pack": 1.0})
    ean = factory.Sequence(lambda n: f"{4000000000000 + n:013d}")
    image_url = factory.Sequence(lambda n: f"https://images.example.com/products/{n}.jpg")
    source_id = factory.Sequence(lambda n: f"test-{n}")
