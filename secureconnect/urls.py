from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from secureconnect import health
from secureconnect.api.schema import SchemaPageRenderer

admin.site.site_header = "SecureConnect video service"
admin.site.site_title = "SecureConnect admin"
admin.site.index_title = "Call history and users"
# The app list beside every page would take a quarter of a 1280 px screen from the calls list;
# the breadcrumbs and the index lead to the same places.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health.health, name="health"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", health.metrics, name="metrics"),
    path(
        "v1/schema",
        SpectacularAPIView.as_view(renderer_classes=[*SpectacularAPIView.renderer_classes, SchemaPageRenderer]),
        name="schema",
    ),
    path("v1/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("v1/", include("accounts.api.urls")),
    path("v1/", include("push.api.urls")),
    path("v1/", include("calls.api.urls")),
    path("app/", include("webclient.urls")),
    path("", RedirectView.as_view(url="/app/", permanent=False), name="home"),
]

# Errors Django raises itself answer in the API's error envelope on /v1 and /health paths.
handler400 = "secureconnect.api.errors.bad_request"
handler403 = "secureconnect.api.errors.permission_denied"
handler404 = "secureconnect.api.errors.not_found"
handler500 = "secureconnect.api.errors.server_error"
