"""Admin of the demo catalog: search by title, brand, model code, EAN or Icecat id."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import Product


class ProductTypeKnownFilter(admin.SimpleListFilter):
    """Known / unknown product type (hundreds of values are too many to list)."""

    title = _("product type")
    parameter_name = "has_type"

    def lookups(self, request, model_admin):
        return [("yes", _("Known")), ("no", _("Unknown"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(product_type="")
        if self.value() == "no":
            return queryset.filter(product_type="")
        return queryset


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "brand", "product_type", "model_number", "price", "updated"]
    list_filter = ["brand", ProductTypeKnownFilter, ("price", admin.EmptyFieldListFilter)]
    search_fields = ["title", "brand", "model_number", "product_type", "=ean", "=source_id"]
    readonly_fields = ["created", "updated"]
    list_per_page = 50
    # Counting 19k rows on every filter change is wasted work in the demo.
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["title", "brand", "product_type", "model_number", "price"]}),
        (_("Details"), {"fields": ["description", "attributes", "ean", "image_url"]}),
        (_("Source"), {"fields": ["source_id", "created", "updated"]}),
    ]
