from django.urls import path

from webclient import views

urlpatterns = [
    path("", views.app_page, name="webclient-app"),
]
