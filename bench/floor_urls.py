"""The product's URLs plus the floor view of the REST benchmark (bench/floor_views.py)."""

from django.urls import path

from bench import floor_views
from secureconnect.urls import handler400, handler403, handler404, handler500  # noqa: F401
from secureconnect.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    path("bench/floor/initiate", floor_views.floor_initiate),
    path("bench/floor/<uuid:call_id>/join", floor_views.floor_join),
    path("bench/floor/<uuid:call_id>/end", floor_views.floor_end),
    *product_urlpatterns,
]
