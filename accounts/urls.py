from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/register", api.UserRegisterApi.as_view(), name="auth-register"),
    path("auth/login", api.UserLoginApi.as_view(), name="auth-login"),
    path("auth/refresh", api.TokenRefreshApi.as_view(), name="auth-refresh"),
    path("auth/logout", api.UserLogoutApi.as_view(), name="auth-logout"),
    path("users/me", api.UserMeApi.as_view(), name="users-me"),
    path("users/lookup", api.UserLookupApi.as_view(), name="users-lookup"),
]
