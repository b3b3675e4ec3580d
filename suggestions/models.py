"""Storage of the app: search history (append-only), daily aggregates,
suggestions with moderation state, blocked terms and model versions.

Products are never referenced by foreign key into the host's catalog: a
product is ``(content_type, object_id)`` with a text id, so any primary key
type works and deleting a product never deletes history.
"""

from __future__ import annotations

import uuid

import re2
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .text import contains_word, match_key, normalize_query


class SearchOrigin(models.TextChoices):
    TYPED = "typed", _("Typed")
    SUGGESTION = "suggestion", _("Chosen from suggestions")
    HISTORY = "history", _("Chosen from own recent searches")
    REFINEMENT = "refinement", _("Chosen from refinement chips")


class EventSurface(models.TextChoices):
    """Where a suggestion list was shown (impressions and clicks)."""

    TYPEAHEAD = "typeahead", _("Typeahead")
    REFINEMENTS = "refinements", _("Refinement chips of a results page")


class SearchEvent(models.Model):
    """One submitted search. Append-only: never updated, deleted only by
    retention or by the shopper's own erase request."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True, help_text=_("When the search was submitted."))
    query = models.CharField(max_length=255, help_text=_("The query as typed (truncated to 255 characters)."))
    normalized_query = models.CharField(max_length=255, db_index=True, help_text=_("Canonical form used for aggregation and suggestions."))
    results_count = models.PositiveIntegerField(null=True, blank=True, help_text=_("Number of results the search returned, if known."))
    origin = models.CharField(max_length=16, choices=SearchOrigin.choices, default=SearchOrigin.TYPED, help_text=_("How the search was started."))
    request_id = models.UUIDField(default=uuid.uuid4, db_index=True, help_text=_("Id of the search response; clicks refer to it."))
    actor_hash = models.CharField(max_length=64, db_index=True, blank=True, help_text=_("Salted hash of the user id or session key: counts distinct shoppers without storing who they are."))
    identified = models.BooleanField(default=False, help_text=_("The shopper is identified: signed in, a returning visitor (the request carried the shopper cookie or an existing session), or an imported user id. Only identified shoppers count towards the k-anonymity gate."))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text=_("Signed-in shopper, if any (deleted with the user)."))
    filters = models.JSONField(default=dict, blank=True, help_text=_("Filters applied with the query (brand, price range …)."))
    understanding = models.JSONField(null=True, blank=True, help_text=_("Intent and entities of the query, filled in by the understanding workers."))

    class Meta:
        verbose_name = _("search event")
        verbose_name_plural = _("search history")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["actor_hash", "-created_at"], name="sugg_search_actor_idx")]

    def __str__(self) -> str:
        return self.query


class SuggestionImpression(models.Model):
    """A suggestion list shown to a shopper, as reported by the client."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True, help_text=_("When the list was shown."))
    request_id = models.UUIDField(db_index=True, help_text=_("Id of the suggest response that produced the list."))
    prefix = models.CharField(max_length=255, help_text=_("What the shopper had typed (normalised)."))
    suggestions = models.JSONField(default=list, help_text=_("Suggestion texts in the order shown."))
    actor_hash = models.CharField(max_length=64, db_index=True, blank=True, help_text=_("Salted hash of the user id or session key."))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text=_("Signed-in shopper, if any."))
    surface = models.CharField(max_length=16, choices=EventSurface.choices, default=EventSurface.TYPEAHEAD, help_text=_("Where the list was shown: the typeahead (prefix: what was typed) or the refinement chips of a results page (prefix: the searched query)."))

    class Meta:
        verbose_name = _("suggestion impression")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix!r} → {len(self.suggestions)} shown"


class SuggestionClick(models.Model):
    """A suggestion chosen by a shopper."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True, help_text=_("When the suggestion was chosen."))
    request_id = models.UUIDField(db_index=True, help_text=_("Id of the suggest response the suggestion came from."))
    prefix = models.CharField(max_length=255, help_text=_("What the shopper had typed (normalised)."))
    suggestion = models.CharField(max_length=255, help_text=_("The chosen suggestion (normalised)."))
    position = models.PositiveSmallIntegerField(help_text=_("0-based position in the shown list."))
    actor_hash = models.CharField(max_length=64, db_index=True, blank=True, help_text=_("Salted hash of the user id or session key."))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text=_("Signed-in shopper, if any."))
    surface = models.CharField(max_length=16, choices=EventSurface.choices, default=EventSurface.TYPEAHEAD, help_text=_("Where the suggestion was chosen: the typeahead or a refinement chip of a results page."))

    class Meta:
        verbose_name = _("suggestion click")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix!r} → {self.suggestion} (#{self.position})"


class ProductClick(models.Model):
    """A search result clicked by a shopper."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True, help_text=_("When the result was clicked."))
    request_id = models.UUIDField(db_index=True, help_text=_("Id of the search response the result came from."))
    query = models.CharField(max_length=255, blank=True, help_text=_("The search query (normalised)."))
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+", help_text=_("Model of the clicked product."))
    object_id = models.CharField(max_length=64, help_text=_("Primary key of the clicked product, as text."))
    position = models.PositiveSmallIntegerField(null=True, blank=True, help_text=_("0-based position in the result list (across pages); empty when not known (clicks imported from a log without positions)."))
    actor_hash = models.CharField(max_length=64, db_index=True, blank=True, help_text=_("Salted hash of the user id or session key."))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text=_("Signed-in shopper, if any."))

    class Meta:
        verbose_name = _("product click")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["content_type", "object_id"], name="sugg_pclick_product_idx")]

    def __str__(self) -> str:
        return f"{self.query!r} → product {self.object_id} (#{self.position})"


class QueryDailyStat(models.Model):
    """Per-day counters for one normalised query, updated with ``F()``."""

    date = models.DateField(help_text=_("Day (in the project's time zone)."))
    normalized_query = models.CharField(max_length=255, help_text=_("Canonical query."))
    searches = models.PositiveIntegerField(default=0, help_text=_("Searches submitted."))
    zero_results = models.PositiveIntegerField(default=0, help_text=_("Searches that returned nothing."))
    suggestion_clicks = models.PositiveIntegerField(default=0, help_text=_("Times this text was chosen from suggestions."))
    product_clicks = models.PositiveIntegerField(default=0, help_text=_("Result clicks after searching this query."))

    class Meta:
        verbose_name = _("daily query statistic")
        ordering = ["-date", "-searches"]
        constraints = [models.UniqueConstraint(fields=["date", "normalized_query"], name="sugg_daily_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.normalized_query}"


class SuggestionSource(models.TextChoices):
    HISTORY = "history", _("Search history")
    CATALOG = "catalog", _("Catalog")
    GENERATED = "generated", _("Generated")
    MANUAL = "manual", _("Manual")


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", _("Pending review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    BLOCKED = "blocked", _("Blocked")


class Suggestion(models.Model):
    """A completion that may be served. Only ``approved`` ones are served;
    ``pending`` await review (generated ones start there), ``rejected`` ones are
    not served but may be rebuilt, ``blocked`` ones are never served again even
    when the next build finds them."""

    text = models.CharField(max_length=255, unique=True, help_text=_("Normalised suggestion text (what is matched and shown)."))
    source = models.CharField(max_length=16, choices=SuggestionSource.choices, db_index=True, help_text=_("Where the suggestion came from."))
    status = models.CharField(max_length=16, choices=SuggestionStatus.choices, default=SuggestionStatus.APPROVED, db_index=True, help_text=_("Moderation state; only approved suggestions are served."))
    weight = models.FloatField(default=0.0, help_text=_("Popularity score (time-decayed searches, or catalog coverage); higher ranks first."))
    pinned_prefix = models.CharField(max_length=100, blank=True, db_index=True, help_text=_("When set, the suggestion leads the list for typed prefixes that start with this (normalised) prefix."))
    searches = models.PositiveIntegerField(default=0, help_text=_("Searches of this text in the mined history window."))
    distinct_users = models.PositiveIntegerField(default=0, help_text=_("Distinct shoppers who searched it (k-anonymity gate)."))
    provenance = models.JSONField(default=dict, blank=True, help_text=_("How the suggestion was derived (rule, counts, model version)."))
    created_at = models.DateTimeField(auto_now_add=True, help_text=_("First built."))
    updated_at = models.DateTimeField(auto_now=True, help_text=_("Last changed."))

    class Meta:
        verbose_name = _("suggestion")
        ordering = ["-weight"]

    def __str__(self) -> str:
        return self.text

    def save(self, *args, **kwargs):
        self.text = normalize_query(self.text)
        self.pinned_prefix = normalize_query(self.pinned_prefix)
        super().save(*args, **kwargs)


class BlockedTermKind(models.TextChoices):
    WORD = "word", _("Whole word")
    PHRASE = "phrase", _("Phrase (anywhere)")
    REGEX = "regex", _("Regular expression")


class BlockedTerm(models.Model):
    """A term that no served suggestion may contain.

    Every term is checked and matched on its own, so one bad term cannot
    break the others. Words and phrases are looked for in the
    :func:`~suggestions.text.match_key` of a text (a word as a whole word,
    :func:`~suggestions.text.contains_word`; a phrase anywhere), so look-alike
    and invisible characters do not get around them. Regular expressions run
    on RE2 (linear time: no pattern can backtrack catastrophically),
    case-insensitively, against the match key and the canonical form (for
    patterns written in a script whose words the key rewrites).
    """

    pattern = models.CharField(max_length=255, help_text=_("Word, phrase or RE2 regular expression (no look-around or back-references; case-insensitive), matched against normalised text with look-alike characters mapped to Latin."))
    kind = models.CharField(max_length=8, choices=BlockedTermKind.choices, default=BlockedTermKind.WORD, help_text=_("How the pattern is matched."))
    note = models.CharField(max_length=255, blank=True, help_text=_("Why it is blocked."))
    created_at = models.DateTimeField(auto_now_add=True, help_text=_("When it was added."))

    class Meta:
        verbose_name = _("blocked term")
        ordering = ["pattern"]
        constraints = [models.UniqueConstraint(fields=["pattern", "kind"], name="sugg_blocked_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.pattern}"

    def clean(self) -> None:
        """Refuse what :meth:`compile` refuses, with its message."""
        try:
            self.compile()
        except ValueError as exc:
            raise ValidationError({"pattern": str(exc)}) from exc

    def literal(self) -> str:
        """The match key of a word or phrase term (what is looked for)."""
        return match_key(self.pattern)

    def compile(self) -> re2._Regexp | str:
        """Check that the term can be served and prepare it for matching.

        Returns:
            The RE2-compiled expression of a regular-expression term, else the
            :meth:`literal` of the word or phrase.

        Raises:
            ValueError: With a message fit for a moderator: the word or phrase
                is empty once normalised, RE2 cannot compile the expression,
                or the expression matches the empty text (it would block every
                suggestion).
        """
        if self.kind != BlockedTermKind.REGEX:
            literal = self.literal()
            if not literal:
                raise ValueError(_("The pattern is empty once normalised."))
            return literal
        try:
            compiled = re2.compile(self.pattern, re2_options())
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise ValueError(
                _("Not a regular expression RE2 can run (look-around and back-references are not supported): %(err)s")
                % {"err": reason}
            ) from exc
        if compiled.search(""):
            raise ValueError(_("This expression matches the empty text, so it would block every suggestion."))
        return compiled

    def matches(self, text: str) -> bool:
        """Whether the term blocks ``text``, by the rule serving applies.

        Raises:
            ValueError: The term cannot be served (see :meth:`compile`).
        """
        compiled = self.compile()
        key = match_key(text)
        if self.kind == BlockedTermKind.PHRASE:
            return compiled in key
        if self.kind == BlockedTermKind.WORD:
            return contains_word(key, compiled)
        return any(compiled.search(form) for form in regex_forms(text, key))


def re2_options() -> re2.Options:
    """RE2 options of regular-expression terms: case-insensitive (texts are
    case-folded anyway, so a pattern typed in capitals still matches), errors
    raised, not logged."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    return options


def regex_forms(text: str, key: str | None = None) -> tuple[str, ...]:
    """The forms of ``text`` a regular-expression term is matched against:
    its match key and, when different, its canonical form."""
    key = match_key(text) if key is None else key
    canonical = normalize_query(text)
    return (key,) if canonical == key else (key, canonical)


class ModelVersionStatus(models.TextChoices):
    CANDIDATE = "candidate", _("Candidate")
    ACTIVE = "active", _("Active")
    RETIRED = "retired", _("Retired")
    REJECTED = "rejected", _("Rejected by the evaluation gate")


class ModelVersion(models.Model):
    """A trained model artefact with its evaluation; at most one active per kind."""

    kind = models.CharField(max_length=32, db_index=True, help_text=_("What the model does: understanding, ranker, embedder, generator …"))
    version = models.CharField(max_length=64, help_text=_("Version label, unique per kind."))
    artefact_uri = models.CharField(max_length=500, help_text=_("Where the artefact is stored (path or URI)."))
    metrics = models.JSONField(default=dict, blank=True, help_text=_("Evaluation metrics on the held-out split."))
    training_window_start = models.DateTimeField(null=True, blank=True, help_text=_("Earliest event used for training."))
    training_window_end = models.DateTimeField(null=True, blank=True, help_text=_("Latest event used for training."))
    status = models.CharField(max_length=16, choices=ModelVersionStatus.choices, default=ModelVersionStatus.CANDIDATE, db_index=True, help_text=_("Only the active version of a kind is served."))
    notes = models.TextField(blank=True, help_text=_("Free-form notes (base model, data, parameters)."))
    baseline_metrics = models.JSONField(default=dict, blank=True, help_text=_("Metrics of the version it was compared with (the active one, or the no-model baseline), on the same held-out window."))
    heldout_window_start = models.DateTimeField(null=True, blank=True, help_text=_("Earliest held-out event (never trained on)."))
    heldout_window_end = models.DateTimeField(null=True, blank=True, help_text=_("Latest held-out event."))
    artefact_checksum = models.CharField(max_length=64, blank=True, help_text=_("SHA-256 of the artefact's files, checked before loading."))
    decision = models.TextField(blank=True, help_text=_("Why the evaluation gate promoted it or not, in plain words."))
    created_at = models.DateTimeField(auto_now_add=True, help_text=_("When the version was registered."))
    promoted_at = models.DateTimeField(null=True, blank=True, help_text=_("When it last became active."))

    class Meta:
        verbose_name = _("model version")
        ordering = ["kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="sugg_modelversion_unique"),
            models.UniqueConstraint(fields=["kind"], condition=models.Q(status="active"), name="sugg_modelversion_one_active"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.version} ({self.status})"


class QueryUnderstanding(models.Model):
    """The latest understanding of one normalised query (intent, entities), as
    produced by the rules fallback or a model version. Written by workers, read by
    the request path through the cache, reviewed in the admin."""

    normalized_query = models.CharField(max_length=255, unique=True, help_text=_("Canonical query."))
    query = models.CharField(max_length=255, help_text=_("A raw form of the query (offsets of the entities refer to it)."))
    language = models.CharField(max_length=8, blank=True, help_text=_("en, zh or mixed."))
    intent = models.CharField(max_length=64, blank=True, db_index=True, help_text=_("Predicted intent."))
    confidence = models.FloatField(default=0.0, help_text=_("Confidence of the intent."))
    data = models.JSONField(default=dict, help_text=_("The whole understanding (entities with offsets and values)."))
    source = models.CharField(max_length=100, blank=True, help_text=_("'rules' or 'model:<version>'."))
    updated_at = models.DateTimeField(auto_now=True, help_text=_("When it was last computed."))

    class Meta:
        verbose_name = _("query understanding")
        verbose_name_plural = _("query understandings")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.normalized_query} → {self.intent}"


class QueryLabelSource(models.TextChoices):
    CONFIRMED = "confirmed", _("Confirmed prediction")
    CORRECTED = "corrected", _("Corrected by a merchandiser")
    IMPORTED = "imported", _("Imported")


class QueryLabel(models.Model):
    """A reviewed label for a query: intent and entity spans confirmed or
    corrected in the admin. Used, with a higher weight, by the next training run."""

    normalized_query = models.CharField(max_length=255, unique=True, help_text=_("Canonical query the label is for."))
    query = models.CharField(max_length=255, help_text=_("The query text the entity offsets refer to."))
    intent = models.CharField(max_length=64, blank=True, help_text=_("Correct intent (blank: not reviewed)."))
    entities = models.JSONField(default=list, blank=True, help_text=_('Correct spans: [{"label", "start", "end", "text"}].'))
    source = models.CharField(max_length=16, choices=QueryLabelSource.choices, default=QueryLabelSource.CORRECTED, help_text=_("How the label was obtained."))
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text=_("Who reviewed it."))
    created_at = models.DateTimeField(auto_now_add=True, help_text=_("First reviewed."))
    updated_at = models.DateTimeField(auto_now=True, help_text=_("Last changed."))

    class Meta:
        verbose_name = _("query label")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.normalized_query}: {self.intent or '—'}"

    def clean(self) -> None:
        errors = []
        for i, ent in enumerate(self.entities or []):
            try:
                start, end, label = int(ent["start"]), int(ent["end"]), str(ent["label"])
            except (KeyError, TypeError, ValueError):
                errors.append(_("Entity %(i)d needs label, start and end.") % {"i": i})
                continue
            if not (0 <= start < end <= len(self.query)) or not label:
                errors.append(_("Entity %(i)d (%(label)s) is outside the query.") % {"i": i, "label": label})
        if errors:
            raise ValidationError({"entities": errors})


class RetrainRunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    PROMOTED = "promoted", _("Promoted a new version")
    KEPT = "kept", _("Kept the active version")
    FAILED = "failed", _("Failed")


class RetrainRun(models.Model):
    """One run of the learning loop for a model kind: its status and progress
    log. At most one run per kind is running (the retrain lock)."""

    kind = models.CharField(max_length=32, db_index=True, help_text=_("Model kind being retrained."))
    status = models.CharField(max_length=16, choices=RetrainRunStatus.choices, default=RetrainRunStatus.RUNNING, db_index=True, help_text=_("Outcome of the run."))
    started_at = models.DateTimeField(default=timezone.now, help_text=_("When the run started."))
    finished_at = models.DateTimeField(null=True, blank=True, help_text=_("When it ended."))
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs", help_text=_("The challenger it trained, if any."))
    log = models.TextField(blank=True, help_text=_("Progress lines, oldest first."))
    error = models.TextField(blank=True, help_text=_("What went wrong, for failed runs."))

    class Meta:
        verbose_name = _("retrain run")
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["kind"], condition=models.Q(status="running"), name="sugg_retrain_one_running")]

    def __str__(self) -> str:
        return f"{self.kind} {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class RankedPrefix(models.Model):
    """The active suggestion ranker's order of the candidates of one typed
    prefix, precomputed by the workers so the request path never runs a model."""

    prefix = models.CharField(max_length=100, unique=True, help_text=_("Normalised typed prefix."))
    texts = models.JSONField(default=list, help_text=_("[text, source] pairs, best first."))
    model_version = models.CharField(max_length=64, help_text=_("Ranker version that ordered them."))
    updated_at = models.DateTimeField(auto_now=True, help_text=_("When it was computed."))

    class Meta:
        verbose_name = _("ranked prefix")
        verbose_name_plural = _("ranked prefixes")

    def __str__(self) -> str:
        return self.prefix


# -- experiments ------------------------------------------------------------------------


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    RUNNING = "running", _("Running")
    STOPPED = "stopped", _("Stopped")


class ExperimentMethod(models.TextChoices):
    AB = "ab", _("A/B test: each shopper sees one version")
    INTERLEAVING = "interleaving", _("Interleaving: each list mixes both versions")


class ExperimentArm(models.TextChoices):
    CONTROL = "control", _("Control")
    TREATMENT = "treatment", _("Treatment")


class Experiment(models.Model):
    """A comparison of two versions of one model kind on live shoppers
    (:mod:`suggestions.experiments`). Shoppers are assigned stickily by a hash
    of the experiment and the shopper; at most one experiment per kind runs."""

    name = models.CharField(max_length=100, help_text=_("What is being tried, in a few words."))
    kind = models.CharField(max_length=32, default="suggestion_ranker", help_text=_("Model kind compared (only the suggestion ranker changes what shoppers see today)."))
    method = models.CharField(max_length=16, choices=ExperimentMethod.choices, default=ExperimentMethod.AB, help_text=_("A/B: shoppers are split between the versions. Interleaving: every shopper's list mixes both versions' orders (team draft) and clicks say which one they prefer; needs far fewer searches, for rankers only."))
    control = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text=_("Version shoppers see today, usually the active one; empty: no model (the popularity order)."))
    treatment = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+", help_text=_("Version being tried."))
    treatment_share = models.FloatField(default=0.5, help_text=_("A/B: share of shoppers given the treatment, between 0.01 and 0.99 (0.5: half)."))
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT, db_index=True, help_text=_("Draft (nothing served), running (shoppers are assigned), stopped (results kept)."))
    prepared_at = models.DateTimeField(null=True, blank=True, help_text=_("When the workers last precomputed both versions' orders; the experiment is served only once they have."))
    started_at = models.DateTimeField(null=True, blank=True, help_text=_("When it was started."))
    stopped_at = models.DateTimeField(null=True, blank=True, help_text=_("When it was stopped."))
    created_at = models.DateTimeField(auto_now_add=True, help_text=_("When it was created."))

    class Meta:
        verbose_name = _("experiment")
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["kind"], condition=models.Q(status="running"), name="sugg_experiment_one_running")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.treatment_id and self.treatment.kind != self.kind:
            errors["treatment"] = _("The treatment is a %(kind)s version, not a %(want)s one.") % {"kind": self.treatment.kind, "want": self.kind}
        if self.control_id and self.control.kind != self.kind:
            errors["control"] = _("The control is a %(kind)s version, not a %(want)s one.") % {"kind": self.control.kind, "want": self.kind}
        if self.control_id and self.control_id == self.treatment_id:
            errors["treatment"] = _("Control and treatment are the same version.")
        if not 0.01 <= float(self.treatment_share) <= 0.99:
            errors["treatment_share"] = _("The treatment share must be between 0.01 and 0.99.")
        if errors:
            raise ValidationError(errors)


class ExperimentRanking(models.Model):
    """One arm's order of one prefix's candidates, precomputed by the workers
    as :class:`RankedPrefix` is for the active ranker."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="rankings", help_text=_("Experiment the order belongs to."))
    arm = models.CharField(max_length=16, choices=ExperimentArm.choices, help_text=_("Which version ordered them."))
    prefix = models.CharField(max_length=100, help_text=_("Normalised typed prefix."))
    texts = models.JSONField(default=list, help_text=_("[text, source] pairs, best first."))

    class Meta:
        verbose_name = _("experiment ranking")
        constraints = [models.UniqueConstraint(fields=["experiment", "arm", "prefix"], name="sugg_expranking_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_id} {self.arm} {self.prefix}"


class ExperimentEventKind(models.TextChoices):
    IMPRESSION = "impression", _("Suggestions shown")
    CLICK = "click", _("Suggestion chosen")


class ExperimentEvent(models.Model):
    """The arm of a suggestion impression or click of a shopper in a running
    experiment (links the event by its request id). Append-only."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="events", help_text=_("Experiment the shopper was in."))
    arm = models.CharField(max_length=16, help_text=_("A/B: control or treatment; interleaving: interleaved."))
    kind = models.CharField(max_length=16, choices=ExperimentEventKind.choices, help_text=_("Impression or click."))
    request_id = models.UUIDField(db_index=True, help_text=_("Id of the suggest response the event reports on."))
    actor_hash = models.CharField(max_length=64, db_index=True, help_text=_("Salted hash of the shopper (the unit of assignment)."))
    position = models.PositiveSmallIntegerField(null=True, blank=True, help_text=_("Click: 0-based position of the chosen suggestion."))
    team = models.CharField(max_length=16, blank=True, help_text=_("Interleaving click: the version whose order contributed the chosen suggestion (blank: neither)."))
    teams = models.JSONField(default=dict, blank=True, help_text=_("Interleaving impression: shown text → version that contributed it."))
    created_at = models.DateTimeField(default=timezone.now, db_index=True, help_text=_("When the event was recorded."))

    class Meta:
        verbose_name = _("experiment event")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["experiment", "kind", "arm"], name="sugg_expevent_arm_idx")]

    def __str__(self) -> str:
        return f"{self.experiment_id} {self.arm} {self.kind}"

# --- analytics rollups (rebuilt from the events by suggestions.analytics) ---


class AnalyticsDay(models.Model):
    """Totals of one day, rebuilt from the events by the analytics rollup
    (:mod:`suggestions.analytics`). Holds no query text and no shopper."""

    date = models.DateField(unique=True, help_text=_("Day (in the project's time zone)."))
    searches = models.PositiveIntegerField(default=0, help_text=_("Searches submitted."))
    searches_with_count = models.PositiveIntegerField(default=0, help_text=_("Searches whose number of results is known (imported ones have none)."))
    zero_result_searches = models.PositiveIntegerField(default=0, help_text=_("Searches that returned nothing."))
    suggestion_searches = models.PositiveIntegerField(default=0, help_text=_("Searches started by choosing a suggestion."))
    history_searches = models.PositiveIntegerField(default=0, help_text=_("Searches started by choosing one of the shopper's recent searches."))
    impressions = models.PositiveIntegerField(default=0, help_text=_("Suggestion lists shown."))
    suggestions_shown = models.PositiveIntegerField(default=0, help_text=_("Suggestions shown, summed over the lists."))
    suggestion_clicks = models.PositiveIntegerField(default=0, help_text=_("Suggestions chosen."))
    product_clicks = models.PositiveIntegerField(default=0, help_text=_("Search results clicked."))
    accepted_characters = models.PositiveIntegerField(default=0, help_text=_("Characters of the chosen suggestions, summed."))
    keystrokes_saved = models.PositiveIntegerField(default=0, help_text=_("Characters of the chosen suggestions that were not typed (suggestion length minus typed prefix length, summed)."))
    rolled_up_at = models.DateTimeField(default=timezone.now, help_text=_("When the day was last rebuilt from the events."))

    class Meta:
        verbose_name = _("search analytics")
        verbose_name_plural = _("search analytics")
        ordering = ["-date"]

    def __str__(self) -> str:
        return str(self.date)


class AnalyticsQueryDay(models.Model):
    """Counts of one normalised query on one day, rebuilt by the analytics
    rollup. Erasure rebuilds the shopper's days; retention deletes old rows."""

    date = models.DateField(help_text=_("Day (in the project's time zone)."))
    normalized_query = models.CharField(max_length=255, help_text=_("Canonical query."))
    searches = models.PositiveIntegerField(default=0, help_text=_("Searches submitted."))
    zero_result_searches = models.PositiveIntegerField(default=0, help_text=_("Searches that returned nothing."))
    suggestion_searches = models.PositiveIntegerField(default=0, help_text=_("Searches started by choosing this suggestion."))
    product_clicks = models.PositiveIntegerField(default=0, help_text=_("Result clicks after searching this query."))

    class Meta:
        verbose_name = _("query analytics of a day")
        ordering = ["-date", "-searches"]
        constraints = [models.UniqueConstraint(fields=["date", "normalized_query"], name="sugg_aqday_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.normalized_query}"


class AnalyticsPositionDay(models.Model):
    """Suggestion lists and clicks by position in the list on one day, rebuilt
    by the analytics rollup. Holds no query text and no shopper."""

    date = models.DateField(help_text=_("Day (in the project's time zone)."))
    position = models.PositiveSmallIntegerField(help_text=_("0-based position in the shown list."))
    impressions = models.PositiveIntegerField(default=0, help_text=_("Lists shown with a suggestion at this position."))
    clicks = models.PositiveIntegerField(default=0, help_text=_("Suggestions chosen at this position."))

    class Meta:
        verbose_name = _("suggestion position analytics of a day")
        ordering = ["-date", "position"]
        constraints = [models.UniqueConstraint(fields=["date", "position"], name="sugg_apday_unique")]

    def __str__(self) -> str:
        return f"{self.date} #{self.position}"


class AnalyticsChipDay(models.Model):
    """Refinement chips shown and chosen on one day, by searched query and
    chip, rebuilt by the analytics rollup. Holds query text (deleted by
    retention like :class:`AnalyticsQueryDay`), no shopper."""

    date = models.DateField(help_text=_("Day (in the project's time zone)."))
    query = models.CharField(max_length=255, help_text=_("The searched query the chip was shown with (normalised)."))
    chip = models.CharField(max_length=255, help_text=_("The chip's text (normalised)."))
    source = models.CharField(max_length=16, blank=True, help_text=_("Source of the suggestion the chip is (generated, history, catalog, manual) when the day was rolled up; empty for a rewrite made of the shopper's own words."))
    shown = models.PositiveIntegerField(default=0, help_text=_("Result pages that showed the chip."))
    clicked = models.PositiveIntegerField(default=0, help_text=_("Times shoppers chose the chip."))

    class Meta:
        verbose_name = _("refinement chip analytics of a day")
        ordering = ["-date", "-shown"]
        constraints = [models.UniqueConstraint(fields=["date", "query", "chip"], name="sugg_acday_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.query} → {self.chip}"


# --- synonyms (suggestions/synonyms.py) ---


class SynonymStatus(models.TextChoices):
    PENDING = "pending", _("Pending review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class SynonymSource(models.TextChoices):
    MINED_COCLICK = "mined_coclick", _("Mined from co-clicks")
    MINED_EMBEDDING = "mined_embedding", _("Mined from embeddings")
    MANUAL = "manual", _("Added by a merchandiser")


class Synonym(models.Model):
    """Two search terms that mean the same to shoppers ("laptop" and "notebook").
    Approved pairs expand searches both ways; mined pairs start pending. Terms
    hold only text that passed the k-anonymity gate or a merchandiser typed."""

    term = models.CharField(max_length=100, help_text=_("One term of the pair (normalised; the alphabetically first)."))
    synonym = models.CharField(max_length=100, help_text=_("The other term (normalised). A search for either also finds products matching the other."))
    status = models.CharField(max_length=16, choices=SynonymStatus.choices, default=SynonymStatus.PENDING, db_index=True, help_text=_("Only approved pairs change searches; mining never changes a decision."))
    source = models.CharField(max_length=16, choices=SynonymSource.choices, default=SynonymSource.MANUAL, db_index=True, help_text=_("Where the pair came from."))
    evidence = models.JSONField(default=dict, blank=True, help_text=_("Why it was proposed: overlap of clicked products, shoppers per term."))
    score = models.FloatField(default=0.0, help_text=_("Strength of the evidence (Jaccard index of clicked products for co-clicks); higher first."))
    decided_at = models.DateTimeField(null=True, blank=True, help_text=_("When it was last approved or rejected."))
    created_at = models.DateTimeField(auto_now_add=True, help_text=_("When it was first proposed or added."))
    updated_at = models.DateTimeField(auto_now=True, help_text=_("Last changed."))

    class Meta:
        verbose_name = _("synonym")
        ordering = ["-score", "term"]
        constraints = [models.UniqueConstraint(fields=["term", "synonym"], name="sugg_synonym_pair_uniq")]

    def __str__(self) -> str:
        return f"{self.term} ↔ {self.synonym}"

    def save(self, *args, **kwargs):
        self.term, self.synonym = sorted((normalize_query(self.term), normalize_query(self.synonym)))
        super().save(*args, **kwargs)


class GeneratedRefinement(Suggestion):
    """Generated suggestions as the review queue shows them (the same rows as
    :class:`Suggestion`, ``source="generated"``; provenance holds the seed
    query, model version, result count and score)."""

    class Meta:
        proxy = True
        verbose_name = _("generated refinement")
        verbose_name_plural = _("generated refinements (review queue)")


class ShopperProfile(models.Model):
    """One shopper's interests for personal re-ranking (:mod:`suggestions.personal`).

    Keyed by the shopper's salted hash only. Written by the receivers of the
    shopper's own searches and product clicks; deleted with their history
    (``erase_history``) and rebuilt or deleted by retention."""

    actor_hash = models.CharField(max_length=64, unique=True, help_text=_("Salted hash of the user id or session key (as on the shopper's events); never the id itself."))
    brands = models.JSONField(default=dict, blank=True, help_text=_("Brand → decayed weight as of 'updated at', from the shopper's clicks and understood searches (top entries only)."))
    product_types = models.JSONField(default=dict, blank=True, help_text=_("Product type → decayed weight as of 'updated at' (top entries only)."))
    products = models.JSONField(default=dict, blank=True, help_text=_("Id of a clicked product → decayed weight as of 'updated at' (top entries only)."))
    events = models.PositiveIntegerField(default=0, help_text=_("Clicks and understood searches that went into the profile."))
    updated_at = models.DateTimeField(default=timezone.now, db_index=True, help_text=_("Time of the newest event in the profile; weights are as of then."))

    class Meta:
        verbose_name = _("shopper profile")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.actor_hash[:12]}… ({self.events} events)"
