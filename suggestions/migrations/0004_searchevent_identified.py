"""SearchEvent.identified: whether the event's shopper counts towards the
k-anonymity gate.

Existing events are backfilled conservatively: signed-in users' searches and
searches imported with a user id (their request id is a version-5 UUID, see
``suggestions.history.IMPORT_NAMESPACE``) are identified. Anonymous searches
recorded before this migration are not: earlier versions started a new session
for every cookie-less request, so their session hashes cannot tell one shopper
from a script. They stay listable and erasable by their session and leave with
retention.
"""

import uuid

from django.db import migrations, models

BATCH = 2000


def backfill(apps, schema_editor):
    SearchEvent = apps.get_model("shop_suggestions", "SearchEvent")  # noqa: N806
    SearchEvent.objects.filter(user__isnull=False).update(identified=True)
    imported: list[int] = []
    rows = (SearchEvent.objects.filter(user__isnull=True).exclude(actor_hash="")
            .values_list("pk", "request_id").iterator(chunk_size=BATCH))
    for pk, request_id in rows:
        if uuid.UUID(str(request_id)).version == 5:
            imported.append(pk)
    for start in range(0, len(imported), BATCH):
        SearchEvent.objects.filter(pk__in=imported[start:start + BATCH]).update(identified=True)


class Migration(migrations.Migration):

    dependencies = [
        ("shop_suggestions", "0003_learning_loop"),
    ]

    operations = [
        migrations.AddField(
            model_name="searchevent",
            name="identified",
            field=models.BooleanField(
                default=False,
                help_text="The shopper is identified: signed in, a returning visitor (the request carried the shopper cookie or an existing session), or an imported user id. Only identified shoppers count towards the k-anonymity gate.",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
