from django.urls import path

from accounts.api import views

urlpatterns = [
    path("auth/register", views.UserRegisterApi.as_view(), name="auth-register"),
    path("auth/login", views.UserLoginApi.as_view(), name="auth-login"),
    path("auth/refresh", views.TokenRefreshApi.as_view(), name="auth-refresh"),
    path("auth/logout", views.UserLogoutApi.as_view(), name="auth-logout"),
    path("users/me", views.UserMeApi.as_view(), name="users-me"),
    path("users/lookup", views.UserLookupApi.as_view(), name="users-lookup"),
]
