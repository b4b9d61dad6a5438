# Device's content type follows the model from accounts to push, so that the permissions and
# admin log entries that name it (a staff member allowed to see devices) keep working. A fresh
# database has only push's (created after migrate), and then nothing changes.

from django.db import migrations


def move_content_type(apps, schema_editor, *, source="accounts", target="push"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    using = schema_editor.connection.alias
    if ContentType.objects.using(using).filter(app_label=target, model="device").exists():
        return
    ContentType.objects.using(using).filter(app_label=source, model="device").update(app_label=target)


def move_back(apps, schema_editor):
    move_content_type(apps, schema_editor, source="push", target="accounts")


class Migration(migrations.Migration):
    dependencies = [
        ("push", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(move_content_type, move_back)]
