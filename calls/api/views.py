"""The calls and conversations REST API: validate, call one service or selector, shape the answer."""

from __future__ import annotations

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from calls import ice, selectors, services
from calls.api import serializers as s
from calls.api.throttles import CallInitiateThrottle
from calls.representation import call_to_dict, conversation_to_dict
from core.api.envelope import PERSISTENCE_DEFERRED, PERSISTENCE_HEADER
from core.api.throttles import UserThrottle


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError({field: ["Must be a valid UUID."]}) from None


def call_response(
    record, *, deferred: bool, status_code: int = status.HTTP_200_OK, with_timeline: bool = False
) -> Response:
    timeline = record.timeline if with_timeline else None
    response = Response(call_to_dict(record.call, record.participants, timeline), status=status_code)
    if deferred:
        response[PERSISTENCE_HEADER] = PERSISTENCE_DEFERRED
    return response


CALL_ID = OpenApiParameter("call_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The call id.")
CONVERSATION_ID = OpenApiParameter(
    "conversation_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The conversation id."
)


class ConversationListCreateApi(APIView):
    @extend_schema(
        parameters=[s.ConversationListQuery],
        responses=s.ConversationListOutput,
        summary="My conversations",
        operation_id="conversations_list",
    )
    def get(self, request):
        query = s.ConversationListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.conversation_list(user_id=request.user.id, **query.validated_data)
        conversations = [conversation_to_dict(c, selectors.conversation_members(c)) for c in page.conversations]
        return Response({"conversations": conversations, "next_cursor": page.next_cursor})

    @extend_schema(
        request=s.ConversationCreateInput,
        responses={
            201: s.ConversationOutput,
            200: OpenApiResponse(
                s.ConversationOutput,
                description="A direct conversation of these two already exists: that conversation.",
            ),
        },
        summary="Create a conversation",
    )
    def post(self, request):
        data = s.ConversationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        conversation, created = services.conversation_create(creator_id=request.user.id, **data.validated_data)
        members = selectors.conversation_members(conversation)
        return Response(
            conversation_to_dict(conversation, members),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ConversationDetailApi(APIView):
    @extend_schema(
        parameters=[CONVERSATION_ID],
        responses=s.ConversationOutput,
        summary="One of my conversations",
    )
    def get(self, request, conversation_id):
        conversation = services.conversation_open(
            conversation_id=parse_uuid(conversation_id, "conversation_id"), user_id=request.user.id
        )
        return Response(conversation_to_dict(conversation, selectors.conversation_members(conversation)))


class CallInitiateApi(APIView):
    throttle_classes = [UserThrottle, CallInitiateThrottle]

    @extend_schema(
        request=s.CallInitiateInput,
        responses={201: s.CallOutput, 404: OpenApiResponse(description="NOT_FOUND: no such conversation.")},
        summary="Start a call",
    )
    def post(self, request):
        data = s.CallInitiateInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.call_initiate(caller_id=request.user.id, **data.validated_data)
        return call_response(result.record, deferred=result.deferred, status_code=status.HTTP_201_CREATED)


class CallDetailApi(APIView):
    @extend_schema(
        parameters=[CALL_ID], responses=s.CallDetailOutput, summary="One call I take part in, with its timeline"
    )
    def get(self, request, call_id):
        record, deferred = selectors.call_get_for_user(call_id=parse_uuid(call_id, "call_id"), user_id=request.user.id)
        record, deferred = services.call_expire_if_overdue(record, deferred=deferred)
        return call_response(record, deferred=deferred, with_timeline=True)


class CallJoinApi(APIView):
    @extend_schema(parameters=[CALL_ID], request=None, responses=s.CallOutput, summary="Accept or rejoin a call")
    def post(self, request, call_id):
        result = services.call_join(call_id=parse_uuid(call_id, "call_id"), user_id=request.user.id)
        return call_response(result.record, deferred=result.deferred)


class CallDeclineApi(APIView):
    @extend_schema(parameters=[CALL_ID], request=None, responses=s.CallOutput, summary="Decline a ringing call")
    def post(self, request, call_id):
        result = services.call_decline(call_id=parse_uuid(call_id, "call_id"), user_id=request.user.id)
        return call_response(result.record, deferred=result.deferred)


class CallLeaveApi(APIView):
    @extend_schema(parameters=[CALL_ID], request=None, responses=s.CallOutput, summary="Leave a call")
    def post(self, request, call_id):
        result = services.call_leave(call_id=parse_uuid(call_id, "call_id"), user_id=request.user.id)
        return call_response(result.record, deferred=result.deferred)


class CallEndApi(APIView):
    @extend_schema(
        parameters=[CALL_ID], request=s.CallEndInput, responses=s.CallOutput, summary="End a call for everyone"
    )
    def post(self, request, call_id):
        call_id = parse_uuid(call_id, "call_id")
        data = s.CallEndInput(data=request.data)  # no body parses as {}; a body that is not an object is a 400
        data.is_valid(raise_exception=True)
        result = services.call_end(
            call_id=call_id, user_id=request.user.id, reason=data.validated_data.get("reason", "")
        )
        return call_response(result.record, deferred=result.deferred)


class CallHistoryApi(APIView):
    @extend_schema(
        parameters=[s.CallHistoryQuery],
        responses=s.CallHistoryOutput,
        summary="My call history",
        operation_id="calls_list",
    )
    def get(self, request):
        query = s.CallHistoryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.call_history(user_id=request.user.id, **query.validated_data)
        return Response({"calls": page.calls, "next_cursor": page.next_cursor})


class CallAnalyticsApi(APIView):
    @extend_schema(parameters=[s.AnalyticsQuery], responses=s.AnalyticsOutput, summary="Analytics of my calls")
    def get(self, request):
        query = s.AnalyticsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(selectors.call_analytics(user_id=request.user.id, **query.validated_data))


class IceServersApi(APIView):
    @extend_schema(responses=s.IceServersOutput, summary="STUN and TURN servers, with TURN credentials")
    def get(self, request):
        return Response(ice.ice_servers_for(user_id=request.user.id))
