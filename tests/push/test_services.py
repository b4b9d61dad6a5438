"""Registering, refreshing, moving, removing and deactivating devices."""

from datetime import timedelta

import pytest
from django.utils import timezone

from push.exceptions import DeviceNotFound
from push.models import Device
from push.selectors import device_list, device_targets_for_users
from push.services import device_deactivate, device_delete, device_register
from tests.factories import make_user

pytestmark = [pytest.mark.portable, pytest.mark.django_db]


def test_registering_a_new_token_creates_an_active_device():
    user = make_user()

    device, created = device_register(user_id=user.id, token="tok-1", platform="android")

    assert created
    assert (device.user, device.token, device.platform, device.is_active) == (user, "tok-1", "android", True)


def test_registering_again_refreshes_last_seen_and_revives_a_dead_token():
    user = make_user()
    device, _ = device_register(user_id=user.id, token="tok-1", platform="android")
    Device.objects.filter(pk=device.pk).update(is_active=False, last_seen_at=timezone.now() - timedelta(days=3))

    again, created = device_register(user_id=user.id, token="tok-1", platform="android")

    assert not created
    assert again.pk == device.pk
    assert again.is_active
    assert again.last_seen_at > timezone.now() - timedelta(minutes=1)


def test_a_token_registered_by_another_user_moves_to_the_new_user():
    old_owner, new_owner = make_user(), make_user()
    device_register(user_id=old_owner.id, token="shared-phone", platform="ios")

    device, created = device_register(user_id=new_owner.id, token="shared-phone", platform="ios")

    assert not created
    assert device.user == new_owner
    assert Device.objects.filter(token="shared-phone").count() == 1
    assert list(device_list(user_id=old_owner.id)) == []


def test_deleting_ones_own_device():
    user = make_user()
    device_register(user_id=user.id, token="tok-1", platform="web")

    device_delete(user_id=user.id, token="tok-1")

    assert not Device.objects.filter(token="tok-1").exists()


def test_deleting_someone_elses_device_is_not_found_and_changes_nothing():
    owner, other = make_user(), make_user()
    device_register(user_id=owner.id, token="tok-1", platform="web")

    with pytest.raises(DeviceNotFound):
        device_delete(user_id=other.id, token="tok-1")

    assert Device.objects.get(token="tok-1").user == owner


def test_deactivated_tokens_are_no_longer_push_targets():
    user = make_user()
    device_register(user_id=user.id, token="alive", platform="android")
    device_register(user_id=user.id, token="dead", platform="android")

    assert device_deactivate(tokens=["dead"]) == 1

    assert [t.token for t in device_targets_for_users(user_ids=[user.id])] == ["alive"]
