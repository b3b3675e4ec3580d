"""Personal re-ranking: a shopper's profile, and how it reorders their search
results and suggestions.

Contracts:

* **Profile** (:class:`~suggestions.models.ShopperProfile`, one row per
  shopper, keyed by :func:`suggestions.history.actor_hash`): decayed weights
  of brands, product types and products. A product click adds
  :data:`CLICK_WEIGHT` to the clicked product's brand, type and id; an
  understood search adds :data:`SEARCH_WEIGHT` to each brand and product type
  its understanding names. Older weight halves every
  ``SUGGESTIONS_PERSONALIZATION_HALF_LIFE_DAYS``; each dimension keeps its
  :data:`KEEP` heaviest entries. A shopper's *affinity* for a brand is its
  share of their brand weight (so for a type, a product); shares do not
  depend on the time they are read, only on how old each event was relative
  to the others.
* **Who writes it**: the receivers of ``query_submitted`` and
  ``product_clicked`` (:func:`record_search`, :func:`record_click`), for
  shoppers with an identity only; :func:`rebuild_profiles` recomputes profiles
  from the stored history (after an import, and for retention). The request
  path only announces.
* **Erasure and retention**: ``erase_history`` deletes the shopper's profile
  with their events; ``garbage_collect`` deletes profiles with no event inside
  the retention period and rebuilds, from the events that remain, those of
  shoppers who had older events deleted (:func:`apply_retention`); deleting a
  user deletes their profile. The profile cookie is deleted by ``DELETE
  history/`` and expires after the retention period.
* **Search** (:func:`rerank_hits`): one indexed read of the profile per search
  (none for a shopper without an identity). The first
  ``SUGGESTIONS_PERSONALIZATION_DEPTH`` results are stably re-sorted by
  ``base_i × (1 + SUGGESTIONS_PERSONALIZATION_BOOST × affinity)``, where
  ``base_i`` is the i-th best score of those results (so the order they came
  in, recall's or the search ranker's, is kept where affinities are equal,
  and products whose scores tie are ordered by affinity alone) and
  ``affinity`` is the mean of the shopper's shares of the product's brand,
  product type and the product itself, over the dimensions the profile has
  (in [0, 1]).
* **Suggestions** (:func:`rerank_suggestions`): the shopper's top brands and
  types travel in a signed cookie bound to the shopper (like the recent
  searches, :mod:`suggestions.recent`), so the suggest path reads no database
  and makes no cache call for them. Search answers set it from the profile
  the search read, so it trails the shopper's newest search or click by one
  search. A completion's brands and types come from
  the catalog gazetteer; it moves up by at most
  ``SUGGESTIONS_PERSONALIZATION_SUGGEST_LIFT × affinity`` places (affinity:
  the mean of its brand's and its type's share; level with the completion it
  overtook, the better liked one comes first). Recent and pinned suggestions
  keep their places.
* **No profile, or the setting off**: every order is exactly as without this
  module (no row read, no cookie read, no reordering).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from .conf import app_settings
from .history import actor_hash
from .recent import cookie_owner

logger = logging.getLogger(__name__)

#: Weight a product click adds to its brand, product type and product.
CLICK_WEIGHT = 1.0
#: Weight an understood search adds to each brand and product type it names
#: (a search says less about a shopper than a click).
SEARCH_WEIGHT = 0.5
#: Heaviest entries kept per dimension in the stored profile.
KEEP = 20
#: Entries per dimension the cookie carries (brands and types only).
COOKIE_KEEP = 5

_COOKIE_SALT = "shop_suggestions.profile"


def _key(value: str) -> str:
    return " ".join(str(value).casefold().split())


def _shares(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(w for w in weights.values() if w > 0)
    return {k: w / total for k, w in weights.items() if w > 0} if total > 0 else {}


@dataclass(frozen=True)
class Profile:
    """A shopper's affinities: shares in [0, 1] per folded brand, product type
    and product id (each dimension sums to 1, or is empty)."""

    brands: Mapping[str, float] = field(default_factory=dict)
    product_types: Mapping[str, float] = field(default_factory=dict)
    products: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_weights(cls, brands: Mapping[str, float], product_types: Mapping[str, float],
                     products: Mapping[str, float] | None = None) -> Profile:
        return cls(_shares(brands), _shares(product_types), _shares(products or {}))

    def __bool__(self) -> bool:
        return bool(self.brands or self.product_types or self.products)

    def product_affinity(self, brand: str, product_type: str, product_id: str) -> float:
        """Mean of the shares of the product's brand, type and id, over the
        dimensions this profile has (a shop without product types does not
        halve every affinity); 0 when none is known."""
        dims = [(self.brands, _key(brand) if brand else ""),
                (self.product_types, _key(product_type) if product_type else ""),
                (self.products, str(product_id))]
        present = [shares.get(k, 0.0) if k else 0.0 for shares, k in dims if shares]
        return sum(present) / len(present) if present else 0.0

    def text_affinity(self, brands: Iterable[str], product_types: Iterable[str]) -> float:
        """Mean of the best share among ``brands`` and the best among ``product_types``."""
        b = max((self.brands.get(_key(v), 0.0) for v in brands), default=0.0)
        t = max((self.product_types.get(_key(v), 0.0) for v in product_types), default=0.0)
        return (b + t) / 2


# -- building profiles --------------------------------------------------------------------


class _Weights:
    """Mutable decayed weights of one shopper, as of ``at``."""

    def __init__(self, brands=None, product_types=None, products=None, events: int = 0,
                 at: datetime | None = None) -> None:
        self.dims = {"brands": dict(brands or {}), "product_types": dict(product_types or {}),
                     "products": dict(products or {})}
        self.events = events
        self.at = at

    def add(self, when: datetime, *, brands: Iterable[str] = (), product_types: Iterable[str] = (),
            product: str = "", weight: float) -> bool:
        items = [("brands", _key(b)) for b in brands if b and _key(b)]
        items += [("product_types", _key(t)) for t in product_types if t and _key(t)]
        if product:
            items.append(("products", str(product)))
        if not items:
            return False
        half_life = max(app_settings.PERSONALIZATION_HALF_LIFE_DAYS, 1e-6) * 86400.0
        if self.at is None:
            self.at = when
        elif when > self.at:
            # Everything stored so far is older: decay it to the new event's time.
            factor = 0.5 ** ((when - self.at).total_seconds() / half_life)
            for dim in self.dims.values():
                for k in dim:
                    dim[k] *= factor
            self.at = when
        else:  # an event older than the profile (rebuilds): weigh it as of the profile's time
            weight *= 0.5 ** ((self.at - when).total_seconds() / half_life)
        for dim, k in items:
            self.dims[dim][k] = self.dims[dim].get(k, 0.0) + weight
        self.events += 1
        return True

    def trimmed(self, dim: str) -> dict[str, float]:
        top = sorted(self.dims[dim].items(), key=lambda kv: (-kv[1], kv[0]))[:KEEP]
        return {k: float(w) for k, w in top if w > 0}

    def row_values(self) -> dict:
        return {"brands": self.trimmed("brands"), "product_types": self.trimmed("product_types"),
                "products": self.trimmed("products"), "events": self.events, "updated_at": self.at}


def _add_event(actor: str, when: datetime, **what) -> None:
    _add_events(actor, [(when, what)])


def _add_events(actor: str, events: list[tuple[datetime, dict]]) -> None:
    """Add ``(when, what)`` events to the shopper's profile: one locked read and one write."""
    from .models import ShopperProfile

    with transaction.atomic():
        row = ShopperProfile.objects.select_for_update().filter(actor_hash=actor).first()
        if row is None:
            weights = _Weights()
            if not any([weights.add(when, **what) for when, what in events]):
                return
            try:
                with transaction.atomic():
                    ShopperProfile.objects.create(actor_hash=actor, **weights.row_values())
                return
            except IntegrityError:  # another request created it first: add to theirs
                row = ShopperProfile.objects.select_for_update().get(actor_hash=actor)
        weights = _Weights(row.brands, row.product_types, row.products, row.events, row.updated_at)
        if any([weights.add(when, **what) for when, what in events]):
            ShopperProfile.objects.filter(pk=row.pk).update(**weights.row_values())


def _entities(understood, label: str) -> list[str]:
    return [e.value or e.text for e in understood.entities_of(label)] if understood is not None else []


def record_search(*, normalized_query: str = "", user=None, session_key: str | None = None,
                  understanding=None, **_: object) -> None:
    """Receiver of ``query_submitted``: add the search's understood brands and types."""
    actor = actor_hash(user, session_key)
    if not app_settings.PERSONALIZATION or not actor or not normalized_query:
        return
    understood = understanding
    if understood is None:
        from .understanding import understand

        try:
            understood = understand(normalized_query, schedule=False)
        except Exception:  # noqa: BLE001 - a profile is an enhancement, never a failure
            return
    brands, types = _entities(understood, "brand"), _entities(understood, "product_type")
    if brands or types:
        _add_event(actor, timezone.now(), brands=brands, product_types=types, weight=SEARCH_WEIGHT)


def record_click(*, product_id: str = "", user=None, session_key: str | None = None, **_: object) -> None:
    """Receiver of ``product_clicked``: add the product, its brand and its type.

    In a ``POST events/`` batch (:func:`suggestions.history.batched_writes`)
    the batch's clicks are added together when it is written: one catalog
    read and one profile write per shopper instead of one of each per click."""
    actor = actor_hash(user, session_key)
    if not app_settings.PERSONALIZATION or not actor or not product_id or not app_settings.ADAPTER:
        return
    from .history import current_batch

    batch = current_batch()
    if batch is None:
        _add_clicks(actor, [(timezone.now(), str(product_id))])
        return
    clicks = batch.memo.get(("profile_clicks", actor))
    if clicks is None:
        clicks = batch.memo[("profile_clicks", actor)] = []
        batch.at_end(lambda: _add_clicks(actor, clicks))
    clicks.append((timezone.now(), str(product_id)))


def _add_clicks(actor: str, clicks: list[tuple[datetime, str]]) -> None:
    from .adapter import get_adapter

    docs = {doc.id: doc for doc in get_adapter().get_documents(list(dict.fromkeys(p for _w, p in clicks)))}
    events = [(when, {"brands": [docs[p].brand], "product_types": [docs[p].product_type], "product": docs[p].id,
                      "weight": CLICK_WEIGHT}) for when, p in clicks if p in docs]
    if events:
        _add_events(actor, events)


def rebuild_profiles(actors: Iterable[str] | None = None, *, batch: int = 2000) -> int:
    """Recompute profiles from the stored history (searches' understanding and
    product clicks): of ``actors``, or of every shopper when None. A shopper
    left with nothing loses their profile. Returns the profiles written."""
    from django.contrib.contenttypes.models import ContentType

    from .adapter import get_adapter
    from .models import ProductClick, SearchEvent, ShopperProfile
    from .understanding import understand

    if not app_settings.PERSONALIZATION:
        return 0
    wanted = None if actors is None else {a for a in actors if a}
    if wanted is not None and not wanted:
        return 0
    searches = SearchEvent.objects.exclude(actor_hash="").exclude(normalized_query="")
    clicks = ProductClick.objects.exclude(actor_hash="")
    if app_settings.ADAPTER:
        clicks = clicks.filter(content_type=ContentType.objects.get_for_model(get_adapter().get_model()))
    else:
        clicks = clicks.none()
    if wanted is not None:
        searches, clicks = searches.filter(actor_hash__in=wanted), clicks.filter(actor_hash__in=wanted)
    events: list[tuple] = [(t, a, "s", q) for a, q, t in
                           searches.values_list("actor_hash", "normalized_query", "created_at").iterator(chunk_size=5000)]
    events += [(t, a, "c", p) for a, p, t in
               clicks.values_list("actor_hash", "object_id", "created_at").iterator(chunk_size=5000)]
    events.sort(key=lambda e: (e[0], e[1]))
    understood: dict[str, tuple[list[str], list[str]]] = {}
    for q in {e[3] for e in events if e[2] == "s"}:
        try:
            u = understand(q, schedule=False)
        except Exception:  # noqa: BLE001
            u = None
        understood[q] = (_entities(u, "brand"), _entities(u, "product_type"))
    docs: dict[str, tuple[str, str]] = {}
    ids = sorted({e[3] for e in events if e[2] == "c"})
    for i in range(0, len(ids), batch):
        for d in get_adapter().get_documents(ids[i:i + batch]):
            docs[d.id] = (d.brand, d.product_type)
    profiles: dict[str, _Weights] = {}
    for when, actor, kind, what in events:
        weights = profiles.setdefault(actor, _Weights())
        if kind == "s":
            brands, types = understood.get(what, ((), ()))
            weights.add(when, brands=brands, product_types=types, weight=SEARCH_WEIGHT)
        elif what in docs:
            brand, ptype = docs[what]
            weights.add(when, brands=[brand], product_types=[ptype], product=what, weight=CLICK_WEIGHT)
    rows = [ShopperProfile(actor_hash=a, **w.row_values()) for a, w in profiles.items() if w.events]
    with transaction.atomic():
        stale = ShopperProfile.objects.all() if wanted is None else ShopperProfile.objects.filter(actor_hash__in=wanted)
        stale.delete()
        ShopperProfile.objects.bulk_create(rows, batch_size=batch)
    return len(rows)


def erase(actor: str) -> int:
    """Delete one shopper's profile (their erasure)."""
    from .models import ShopperProfile

    return ShopperProfile.objects.filter(actor_hash=actor).delete()[0] if actor else 0


def apply_retention(cutoff: datetime, touched: Iterable[str]) -> int:
    """Retention: delete profiles with no event since ``cutoff``, and rebuild
    from the remaining events those of ``touched`` shoppers (whose older events
    retention just deleted). Returns the profiles deleted outright."""
    from .models import ShopperProfile

    deleted = ShopperProfile.objects.filter(updated_at__lt=cutoff).delete()[0]
    touched = set(touched)
    if touched:
        kept = set(ShopperProfile.objects.filter(actor_hash__in=touched).values_list("actor_hash", flat=True))
        if kept:
            if app_settings.PERSONALIZATION:
                rebuild_profiles(kept)
            else:
                ShopperProfile.objects.filter(actor_hash__in=kept).delete()
    return deleted


def delete_user_profile(*, instance, **_: object) -> None:
    """Receiver of the user model's ``post_delete``: the user's profile goes with them."""
    from .models import ShopperProfile

    ShopperProfile.objects.filter(actor_hash=actor_hash(user=instance)).delete()


# -- reading profiles ---------------------------------------------------------------------


def load(actor: str) -> Profile | None:
    """The stored profile of a shopper hash (one indexed read), None without one."""
    from .models import ShopperProfile

    if not actor or not app_settings.PERSONALIZATION:
        return None
    row = (ShopperProfile.objects.filter(actor_hash=actor)
           .values_list("brands", "product_types", "products").first())
    if row is None:
        return None
    profile = Profile.from_weights(*row)
    return profile or None


def profile_for(user=None, session_key: str | None = None) -> Profile | None:
    """The profile of the request's shopper (None for nobody, or without one)."""
    return load(actor_hash(user, session_key))


def read_cookie(request, *, user=None, session_key: str | None = None) -> Profile | None:
    """The shopper's brand and type affinities from their signed cookie (no
    database, no cache); None without a valid cookie of this shopper."""
    if not app_settings.PERSONALIZATION:
        return None
    raw = request.COOKIES.get(app_settings.PROFILE_COOKIE_NAME)
    owner = cookie_owner(user, session_key) if raw else ""
    if not owner:
        return None
    try:
        data = signing.loads(raw, salt=_COOKIE_SALT)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, dict) or data.get("a") != owner:
        return None

    def dim(name: str) -> dict[str, float]:
        value = data.get(name)
        if not isinstance(value, dict):
            return {}
        return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and v > 0}
    profile = Profile(dim("b"), dim("t"))
    return profile or None


def write_cookie(request, response, profile: Profile | None, *, user=None, session_key: str | None = None) -> None:
    """Set the profile cookie (top brands and types) on ``response``; delete a
    carried one when there is no profile (erased elsewhere, or the setting off)."""
    owner = cookie_owner(user, session_key)
    name = app_settings.PROFILE_COOKIE_NAME
    if not owner or not profile or not (profile.brands or profile.product_types):
        if name in request.COOKIES:
            forget_cookie(response)
        return

    def top(shares: Mapping[str, float]) -> dict[str, float]:
        return {k: round(v, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:COOKIE_KEEP]}
    # Base64 of compressed JSON: cookie headers are Latin-1, brands may be Chinese.
    value = signing.dumps({"a": owner, "b": top(profile.brands), "t": top(profile.product_types)},
                          salt=_COOKIE_SALT, compress=True)
    response.set_cookie(name, value, max_age=app_settings.HISTORY_RETENTION_DAYS * 86400,
                        domain=settings.SESSION_COOKIE_DOMAIN, secure=settings.SESSION_COOKIE_SECURE,
                        httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE)


def forget_cookie(response) -> None:
    """Delete the profile cookie (erasure)."""
    response.delete_cookie(app_settings.PROFILE_COOKIE_NAME, domain=settings.SESSION_COOKIE_DOMAIN,
                           samesite=settings.SESSION_COOKIE_SAMESITE)


# -- re-ranking ---------------------------------------------------------------------------


def rerank_hits(hits: list, profile: Profile | None, *, boost: float | None = None,
                depth: int | None = None) -> list:
    """``hits`` (:class:`~suggestions.recall.SearchHit`, best first) with the first
    ``depth`` re-sorted for ``profile`` (see the module contract); the same list
    object's order when there is no profile."""
    if not profile or len(hits) < 2:
        return hits
    boost = app_settings.PERSONALIZATION_BOOST if boost is None else boost
    depth = app_settings.PERSONALIZATION_DEPTH if depth is None else depth
    head, tail = hits[:depth], hits[depth:]
    base = sorted((float(h.score) for h in head), reverse=True)
    keys = []
    for i, h in enumerate(head):
        doc = h.document
        affinity = profile.product_affinity(doc.brand, doc.product_type, doc.id)
        keys.append((-(base[i] * (1.0 + boost * affinity)), i))
    order = sorted(range(len(head)), key=lambda i: keys[i])
    return [head[i] for i in order] + tail


class _TextEntities:
    """Brands and types the gazetteer finds in suggestion texts, memoised per gazetteer."""

    MAX = 50_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gazetteer = None
        self.memo: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def of(self, text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        from .nlp.gazetteer import get_gazetteer

        gazetteer = get_gazetteer()
        with self.lock:
            if gazetteer is not self.gazetteer:
                self.gazetteer, self.memo = gazetteer, {}
            found = self.memo.get(text)
        if found is None:
            entities = gazetteer.tag(text)
            found = (tuple(e.value or e.text for e in entities if e.label == "brand"),
                     tuple(e.value or e.text for e in entities if e.label == "product_type"))
            with self.lock:
                if len(self.memo) >= self.MAX:
                    self.memo.clear()
                self.memo[text] = found
        return found


_text_entities = _TextEntities()


def rerank_suggestions(items: list, profile: Profile | None, *, lift: float | None = None) -> list:
    """``items`` (:class:`~suggestions.serving.SuggestionItem`) with the
    completions (kind ``suggestion``) moved up for ``profile`` (see the module
    contract); the same list when there is no profile."""
    if not profile or not (profile.brands or profile.product_types):
        return items
    lift = app_settings.PERSONALIZATION_SUGGEST_LIFT if lift is None else lift
    slots = [i for i, item in enumerate(items) if item.kind == "suggestion"]
    if len(slots) < 2 or lift <= 0:
        return items
    keys = []
    for rank, i in enumerate(slots):
        brands, types = _text_entities.of(items[i].text)
        affinity = profile.text_affinity(brands, types)
        # Level with the one it overtook: the better liked first.
        keys.append((rank - lift * affinity, -affinity, rank))
    order = sorted(range(len(slots)), key=lambda r: keys[r])
    out = list(items)
    for slot, r in zip(slots, order, strict=True):
        out[slot] = items[slots[r]]
    return out
