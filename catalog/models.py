"""The demo shop's product model, filled from Open Icecat by
``manage.py catalog_load_icecat``.

Contract: ``source_id`` is the Icecat product id and is unique, so loading is
an upsert by it; products added by hand leave it empty (NULL, so many may).
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class Product(models.Model):
    """A product of the demo shop."""

    title = models.CharField(max_length=300, help_text=_("Full product title as shown in results."))
    brand = models.CharField(max_length=100, blank=True, db_index=True, help_text=_("Manufacturer or brand (Icecat supplier)."))
    model_number = models.CharField(max_length=100, blank=True, db_index=True, help_text=_("Manufacturer's model code, e.g. 006R90321."))
    product_type = models.CharField(max_length=100, blank=True, db_index=True, help_text=_("Category phrase such as 'toner cartridge'; blank when unknown."))
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True, help_text=_("Price in the shop's currency; empty when unknown."))
    description = models.TextField(blank=True, help_text=_("Short marketing description."))
    attributes = models.JSONField(default=dict, blank=True, help_text=_("Technical attributes (name to value), e.g. {'product_colour': 'Black'}."))
    ean = models.CharField(max_length=20, blank=True, db_index=True, help_text=_("European Article Number (barcode)."))
    image_url = models.URLField(max_length=500, blank=True, help_text=_("URL of a product image (500x500 where available)."))
    # NULL rather than "" for hand-added products: several may lack an Icecat
    # id, and a plain (not partial) unique index is what the loader's
    # ON CONFLICT (source_id) upsert needs.
    source_id = models.CharField(max_length=32, unique=True, null=True, blank=True, help_text=_("Open Icecat product id; empty for products added by hand."))  # noqa: DJ001
    created = models.DateTimeField(auto_now_add=True, help_text=_("When the product was first stored."))
    updated = models.DateTimeField(auto_now=True, help_text=_("When the product was last changed."))

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("product", args=[self.pk])
