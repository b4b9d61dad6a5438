from django.urls import path

from calls.api import views

urlpatterns = [
    path("conversations", views.ConversationListCreateApi.as_view(), name="conversation-list"),
    path("conversations/<str:conversation_id>", views.ConversationDetailApi.as_view(), name="conversation-detail"),
    path("calls", views.CallHistoryApi.as_view(), name="call-history"),
    path("calls/initiate", views.CallInitiateApi.as_view(), name="call-initiate"),
    path("calls/analytics", views.CallAnalyticsApi.as_view(), name="call-analytics"),
    path("calls/ice-servers", views.IceServersApi.as_view(), name="call-ice-servers"),
    path("calls/<str:call_id>", views.CallDetailApi.as_view(), name="call-detail"),
    path("calls/<str:call_id>/join", views.CallJoinApi.as_view(), name="call-join"),
    path("calls/<str:call_id>/decline", views.CallDeclineApi.as_view(), name="call-decline"),
    path("calls/<str:call_id>/leave", views.CallLeaveApi.as_view(), name="call-leave"),
    path("calls/<str:call_id>/end", views.CallEndApi.as_view(), name="call-end"),
]
