from django.contrib import admin
from django.urls import path

admin.site.site_header = "SecureConnect video service"
admin.site.site_title = "SecureConnect admin"
admin.site.index_title = "Call history and users"

urlpatterns = [
    path("admin/", admin.site.urls),
]
