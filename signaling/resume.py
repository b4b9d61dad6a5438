"""Grace and resume: what happens to a participant's messages between a dropped socket and its
return.

When a participant's last signaling socket drops while the call is live, the dropped socket's
channel stays in the call's groups for CALL_RECONNECT_GRACE seconds and a ``ResumeHolder`` task
of this process keeps reading it: every message addressed to the participant (broadcast or
targeted) is held, in order, up to RESUME_BUFFER_MESSAGES and RESUME_BUFFER_BYTES (what exceeds
that is dropped and counted). Presence records the holder's channel.

A new socket of the same user for the same call, on any instance, finds the holder in presence
and sends it ``resume.request``; the holder answers with its messages in ``resume.batch``
messages (the last one ``final``, with how many were dropped) on the new socket's channel and
goes. The new socket, already in the groups before it asked, delivers the held messages first,
then what arrived live meanwhile, skipping any message it already delivered (each relayed
message carries an ``id`` on the channel layer, never on the wire).

When the grace ends with no resume, the holder leaves the groups and hands the decision to the
call lifecycle (``calls.services.call_connections_check``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from asgiref.sync import sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings
from django.db import connections

from calls import presence
from calls.services import call_connections_check
from signaling import metrics, protocol
from signaling.call_events import SIGNAL_RELAY
from signaling.groups import group_name
from signaling.layers import LAYER_ERRORS, LayerUnavailable, layer_call

logger = logging.getLogger(__name__)

RESUME_REQUEST = "resume.request"
RESUME_BATCH = "resume.batch"
BATCH_MESSAGES = 100  # messages per resume.batch on the channel layer
RESUME_WAIT = 2.0  # seconds a resumed socket waits for a holder before it gives up on it


class ResumeHolder:
    def __init__(
        self, *, channel_layer, channel_name: str, groups: list[str], call_id: str, user_id: str, until: float
    ):
        self.layer = channel_layer
        self.channel_name = channel_name
        self.groups = groups
        self.call_id = call_id
        self.user_id = user_id
        self.until = until  # epoch seconds
        self.held: list[dict] = []
        self.held_bytes = 0
        self.dropped = 0
        self.handed_over = False  # a resume took the messages before this task started

    async def run(self) -> None:
        settled = self.handed_over  # nothing left to decide at the end
        try:
            while not settled:
                remaining = self.until - time.time()
                if remaining <= 0:
                    break
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel_name), timeout=remaining)
                except TimeoutError:
                    break
                except LAYER_ERRORS:
                    break
                kind = message.get("type")
                if kind == SIGNAL_RELAY:
                    self.hold(message)
                elif kind == RESUME_REQUEST:
                    await self.hand_over(message["reply_to"])
                    settled = True
                elif kind in ("call.ended", "participant.revoked"):
                    settled = True
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Resume holder failed for user %s in call %s", self.user_id, self.call_id)
        finally:
            await self.release(grace_over=not settled)

    def hold(self, message: dict) -> None:
        if message.get("sender_id") == self.user_id:
            return
        size = len(protocol.encode(message["message"]))
        if len(self.held) >= settings.RESUME_BUFFER_MESSAGES or self.held_bytes + size > settings.RESUME_BUFFER_BYTES:
            self.dropped += 1
            metrics.resume_buffer_dropped.inc()
            return
        self.held.append(message)
        self.held_bytes += size

    async def hand_over(self, reply_to: str) -> None:
        batches = [self.held[i : i + BATCH_MESSAGES] for i in range(0, len(self.held), BATCH_MESSAGES)] or [[]]
        for index, batch in enumerate(batches):
            final = index == len(batches) - 1
            with contextlib.suppress(*LAYER_ERRORS, ChannelFull):
                await self.layer.send(
                    reply_to,
                    {
                        "type": RESUME_BATCH,
                        "holder": self.channel_name,
                        "messages": batch,
                        "final": final,
                        "dropped": self.dropped if final else 0,
                    },
                )

    async def release(self, *, grace_over: bool) -> None:
        for group in self.groups:
            with contextlib.suppress(LayerUnavailable):
                await layer_call("group_discard", self.layer.group_discard(group, self.channel_name))
        try:
            still_here = await sync_to_async(self._release_and_decide, thread_sensitive=False)(grace_over)
        except Exception:
            logger.exception("Could not settle the grace of user %s in call %s", self.user_id, self.call_id)
            return
        if grace_over and not still_here:
            # Not joined (a ringing callee's socket), or nothing to decide: the others hear leave.
            leave = protocol.presence_message(protocol.MessageType.LEAVE, call_id=self.call_id, user_id=self.user_id)
            message = {"type": SIGNAL_RELAY, "message": leave, "sender_id": self.user_id}
            with contextlib.suppress(LayerUnavailable):
                await layer_call("group_send", self.layer.group_send(group_name(call_id=self.call_id), message))

    def _release_and_decide(self, grace_over: bool) -> bool:
        """Give up the hold; at the end of the grace, let the lifecycle decide. True when there is
        nothing more to tell the others (they came back, or the lifecycle told them)."""
        presence.presence_hold_released(call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name)
        if not grace_over:
            return True
        seen = presence.presence_of_calls([self.call_id])[self.call_id].of(self.user_id)
        if seen.connected or seen.holders:
            return True  # they are back (or another drop of theirs holds): nothing to decide yet
        try:
            if call_connections_check(call_id=self.call_id) is not None:
                return True
        finally:
            connections.close_all()  # this executor thread's; no connection outlives the check
        seen = presence.presence_of_calls([self.call_id])[self.call_id].of(self.user_id)
        return seen.connected or bool(seen.holders)
