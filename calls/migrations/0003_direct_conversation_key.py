"""One direct conversation per pair: ``Conversation.direct_key``, filled in for existing rows,
then made unique.

Nothing is deleted. Where a pair already has several direct conversations (the README's
walk-through after ``seed_demo`` made a second Alice-Bob one), the oldest gets the key and the
later ones keep ``direct_key`` null: they stay readable, with their calls, and every new create
answers with the oldest. A direct conversation that does not have exactly two members keeps a
null key too.
"""

from django.db import migrations, models


def fill_direct_keys(apps, schema_editor):
    Conversation = apps.get_model("calls", "Conversation")
    ConversationParticipant = apps.get_model("calls", "ConversationParticipant")
    members = {}
    for conversation_id, user_id in (
        ConversationParticipant.objects.filter(conversation__type="direct")
        .values_list("conversation_id", "user_id")
        .iterator()
    ):
        members.setdefault(conversation_id, []).append(str(user_id))
    taken = set()
    for conversation_id in (
        Conversation.objects.filter(type="direct").order_by("created_at", "id").values_list("id", flat=True).iterator()
    ):
        pair = members.get(conversation_id, [])
        if len(pair) != 2:
            continue
        key = ":".join(sorted(pair))
        if key in taken:
            continue  # a later duplicate: kept, without the key
        taken.add(key)
        Conversation.objects.filter(pk=conversation_id).update(direct_key=key)
    if schema_editor.connection.vendor == "postgresql" and schema_editor.connection.in_atomic_block:
        # Fire the deferred foreign-key checks these updates queued, so that the ALTER TABLE
        # adding the constraint does not meet "pending trigger events" on PostgreSQL.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0002_end_reason_connection_lost"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="direct_key",
            field=models.CharField(blank=True, editable=False, max_length=73, null=True),
        ),
        migrations.RunPython(fill_direct_keys, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="conversation",
            constraint=models.UniqueConstraint(fields=("direct_key",), name="conversation_direct_pair_unique"),
        ),
    ]
