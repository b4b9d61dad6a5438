"""The ``support`` group: view-only access to calls, their participants, conversations (and
their members) and users in the admin. Add support staff to it (and make them staff); it never
grants change, add or delete.

Django creates permissions after ``migrate`` (post_migrate), too late for a fresh database, so
this migration creates the content types and permissions it needs first.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "support"
VIEW_PERMISSIONS = (
    ("calls", "view_call"),
    ("calls", "view_callparticipant"),
    ("calls", "view_conversation"),
    ("calls", "view_conversationparticipant"),
    ("accounts", "view_user"),
)


def create_support_group(apps, schema_editor):
    using = schema_editor.connection.alias
    for label in {label for label, _ in VIEW_PERMISSIONS}:
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # create_permissions skips apps without models
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(using).get_or_create(name=GROUP)
    for label, codename in VIEW_PERMISSIONS:
        group.permissions.add(
            Permission.objects.using(using).get(content_type__app_label=label, codename=codename)
        )


def remove_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0003_direct_conversation_key"),
        ("accounts", "0002_device"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_support_group, remove_support_group, elidable=False),
    ]
