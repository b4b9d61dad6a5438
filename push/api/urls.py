from django.urls import path

from push.api.views import DeviceDetailApi, DeviceListCreateApi

urlpatterns = [
    path("devices", DeviceListCreateApi.as_view(), name="device-list"),
    path("devices/<str:token>", DeviceDetailApi.as_view(), name="device-detail"),
]
