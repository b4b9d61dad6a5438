# Device moved to the push app (push.0001_initial); its table, accounts_device, stays where it is.
# State only: no SQL runs, no row is touched.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_canonical_emails'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='Device')],
            database_operations=[],
        ),
    ]
