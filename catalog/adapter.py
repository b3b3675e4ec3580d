"""The demo shop's :class:`~suggestions.adapter.ProductAdapter`.

Named in ``SUGGESTIONS_ADAPTER``; it is the only place where ``suggestions``
learns about :class:`catalog.models.Product`.
"""

from __future__ import annotations

from suggestions.adapter import ProductAdapter, ProductDocument

from .models import Product


class CatalogAdapter(ProductAdapter):
    """Turns :class:`~catalog.models.Product` rows into search documents."""

    def get_model(self) -> type[Product]:
        return Product

    def to_document(self, obj: Product) -> ProductDocument | None:
        """Build the document of ``obj``; products without a title are not searchable.

        Args:
            obj: A product.

        Returns:
            Its document, or ``None`` when it should not be searchable.
        """
        if not obj.title.strip():
            return None
        return ProductDocument(
            id=str(obj.pk),
            title=obj.title,
            brand=obj.brand,
            product_type=obj.product_type,
            model_number=obj.model_number,
            description=obj.description,
            attributes=dict(obj.attributes or {}),
            price=float(obj.price) if obj.price is not None else None,
            url=obj.get_absolute_url(),
            image_url=obj.image_url,
        )
