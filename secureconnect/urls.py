from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "SecureConnect video service"
admin.site.site_title = "SecureConnect admin"
admin.site.index_title = "Call history and users"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include("accounts.urls")),
    path("v1/", include("accounts.push.urls")),
    path("v1/", include("calls.api.urls")),
]
