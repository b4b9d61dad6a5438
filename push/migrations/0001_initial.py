# Device, moved here from accounts (accounts.0004_device_moves_to_push). Its table was created by
# accounts.0002_device and keeps its name (db_table); this migration changes state only.

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0004_device_moves_to_push'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Device',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('token', models.CharField(max_length=512, unique=True)),
                        ('platform', models.CharField(choices=[('android', 'Android'), ('ios', 'iOS'), ('web', 'Web')], max_length=10)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_seen_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('is_active', models.BooleanField(default=True)),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='push_devices', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'accounts_device',
                        'ordering': ['-last_seen_at'],
                        'indexes': [models.Index(fields=['user', 'is_active'], name='device_user_active')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
