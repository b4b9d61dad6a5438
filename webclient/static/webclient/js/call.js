// One call from this tab's point of view: local media, one RTCPeerConnection per other
// participant (a mesh, MAX_CALL_PARTICIPANTS is small), and the call's signaling socket.
//
// Who offers: when two participants learn of each other (the ``participants`` list on
// connecting, or a ``join``), the one with the smaller user id sends the offer, addressed
// with target_id; the other answers. The server promises that two sockets connecting at once
// each hear of the other at least once, so exactly one offer goes out per pair. Mute state
// travels as mute_audio / mute_video messages (the server also records it on the call);
// muting only disables the local track, so no renegotiation is ever needed.

import { nameOf } from "./people.js";
import { SignalingSocket } from "./sockets.js";

const LIVE_PEER_STATES = new Set(["new", "connecting", "connected"]);
const LEAVE_GRACE_MS = 5000;
// While someone in a group call still rings, the call is read again this often: when a callee
// of a call that goes on stops ringing unanswered, only that callee hears call_missed.
const RINGING_REREAD_MS = 3000;

export class MediaError extends Error {}

/** Camera and/or microphone, with a readable error; falls back to audio when the camera fails. */
export async function openLocalMedia(callType) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new MediaError("Calls need a secure page: open the client over https, or on localhost.");
  }
  const wantVideo = callType === "video";
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: true, video: wantVideo }), notice: null };
  } catch (error) {
    if (wantVideo && ["NotFoundError", "NotReadableError", "OverconstrainedError"].includes(error.name)) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
        return { stream, notice: "No usable camera: you are in the call with audio only." };
      } catch {
        // fall through to the message for the first error
      }
    }
    throw new MediaError(mediaErrorMessage(error));
  }
}

function mediaErrorMessage(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera and microphone access was refused. Allow it for this site and try again.";
    case "NotFoundError":
      return "No microphone was found.";
    case "NotReadableError":
      return "The camera or microphone is in use by another application.";
    default:
      return `Camera and microphone are not available (${error?.message || error}).`;
  }
}

/** What a finished call says to this user. ``call``: {status, end_reason, duration_seconds, ...}. */
export function describeOutcome(call, { selfId, nameOf }) {
  const isCaller = call.caller_id ? call.caller_id === selfId : undefined;
  const caller = call.caller_id ? nameOf(call.caller_id) : "The caller";
  switch (call.status) {
    case "declined": {
      if (isCaller === false) return "Call declined";
      const who = (call.participants || []).filter((p) => p.state === "declined").map((p) => nameOf(p.user_id));
      return who.length ? `${who.join(", ")} declined the call` : "The call was declined";
    }
    case "missed":
      return isCaller === false ? `Missed call from ${caller}` : "No answer";
    case "cancelled":
      return isCaller === false ? `${caller} cancelled the call` : "Call cancelled";
    case "failed":
      return "The call failed";
    default: {
      const seconds = call.duration_seconds;
      const ended = call.end_reason === "connection_lost" ? "Call ended: connection lost" : "Call ended";
      return seconds ? `${ended} · ${formatDuration(seconds)}` : ended;
    }
  }
}

export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

class Peer {
  constructor(userId) {
    this.userId = userId;
    this.pc = null;
    this.stream = new MediaStream();
    this.pendingCandidates = [];
    this.audioMuted = false;
    this.videoMuted = false;
    this.everConnected = false;
  }
}

export class CallSession extends EventTarget {
  /**
   * @param call the call as the API returned it
   * @param role "caller" or "callee"
   */
  constructor({ api, selfId, call, role, localStream, iceServers }) {
    super();
    this.api = api;
    this.selfId = selfId;
    this.call = call;
    this.role = role;
    this.localStream = localStream;
    this.iceServers = iceServers;
    this.peers = new Map();
    this.pendingCandidates = new Map(); // candidates that came before their offer
    this.leaveTimers = new Map();
    this.reconnecting = new Set(); // user ids the server said are reconnecting
    this.departed = new Set(); // user ids whose signaling left for good (the call's record may lag)
    this.signaling = null;
    this.state = role === "caller" ? "outgoing" : "connecting";
    this.audioMuted = false;
    this.videoMuted = false;
    this.connectedAt = null;
    this.finished = false;
  }

  get callId() {
    return this.call.call_id;
  }

  get hasVideo() {
    return this.localStream.getVideoTracks().length > 0;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state, message) {
    if (this.finished) return;
    this.state = state;
    if (state === "connected" && !this.connectedAt) this.connectedAt = Date.now();
    this.emit("state", { state, message });
  }

  /** Open the call's signaling socket; peers come as they connect theirs. */
  start() {
    this.signaling = new SignalingSocket(this.api, this.callId);
    this.signaling.addEventListener("message", (e) => this.onSignal(e.detail));
    this.signaling.addEventListener("status", (e) => {
      const { state, reason, delay } = e.detail;
      if (state === "retrying") {
        this.emit("signaling", { state: "reconnecting", reason, delay });
        if (this.state !== "outgoing") this.setState("reconnecting", "Reconnecting…");
      } else if (state === "online" && e.detail.reconnected) {
        this.emit("signaling", { state: "online" });
        if (this.state === "reconnecting") {
          this.setState(this.isMediaConnected() ? "connected" : "connecting", this.isMediaConnected() ? "Connected" : "Connecting…");
        }
      }
    });
    this.signaling.addEventListener("ended", (e) => this.onSignalingEnded(e.detail));
    this.watchRinging();
    this.signaling.addEventListener("unauthorized", (e) =>
      this.finish({ status: "failed" }, { message: e.detail.reason }),
    );
    this.signaling.start();
  }

  // --- signaling messages -------------------------------------------------------------------

  onSignal(message) {
    if (this.finished) return;
    const from = message.sender_id;
    switch (message.type) {
      case "participants":
        for (const userId of message.participants || []) if (userId !== this.selfId) this.peerPresent(userId);
        break;
      case "join":
        clearTimeout(this.leaveTimers.get(from));
        this.departed.delete(from);
        this.peerPresent(from);
        this.emit("roster");
        break;
      case "leave":
        this.peerLeft(from);
        break;
      case "participant_reconnecting":
        // Their connection to the server dropped; the server holds what we send them.
        this.reconnecting.add(from);
        this.emit("peer-state", { userId: from, state: "reconnecting" });
        this.emit("state", { state: this.state, message: `${nameOf(from)} is reconnecting…` });
        break;
      case "participant_resumed": {
        clearTimeout(this.leaveTimers.get(from));
        this.reconnecting.delete(from);
        const peer = this.peers.get(from);
        if (peer?.pc) this.emit("peer-state", { userId: from, state: peer.pc.connectionState });
        else this.peerPresent(from);
        if (this.state === "connected") this.emit("state", { state: this.state, message: "Connected" });
        break;
      }
      case "resume_incomplete":
        // Messages of the gap were lost: renegotiate with everyone (a fresh offer restarts ICE).
        for (const userId of this.peers.keys()) this.offerTo(userId).catch((err) => this.peerError(userId, err));
        break;
      case "offer":
        this.handleOffer(from, message.sdp).catch((err) => this.peerError(from, err));
        break;
      case "answer":
        this.handleAnswer(from, message.sdp).catch((err) => this.peerError(from, err));
        break;
      case "ice_candidate":
        this.handleCandidate(from, message.candidate);
        break;
      case "mute_audio":
      case "mute_video":
        this.remoteMedia(from, message.type, Boolean(message.muted));
        break;
      case "call_ended":
        this.finish({ ...this.call, status: message.status || "ended", end_reason: message.reason });
        this.refreshOutcome();
        break;
      case "error":
        this.emit("notice", { message: message.message || "The server refused a message." });
        break;
      default:
        break;
    }
  }

  onSignalingEnded({ code, reason }) {
    if (this.finished) return;
    if (code === 1000 || code === 4409) {
      // The server closed it because the call ended; call_ended (or the events socket) says how.
      this.refreshOutcome({ finishIfOver: true });
      return;
    }
    if (this.isMediaConnected()) {
      this.emit("notice", { message: `${reason} The call goes on, but changes cannot be signaled.` });
      return;
    }
    this.finish({ ...this.call, status: "failed" }, { message: reason });
  }

  /** Read the call once more for the final status and duration (history has the same). */
  async refreshOutcome({ finishIfOver = false } = {}) {
    try {
      const call = await this.api.getCall(this.callId);
      if (["ringing", "active"].includes(call.status)) return;
      if (finishIfOver && !this.finished) this.finish(call);
      else this.emit("outcome", { call });
    } catch {
      // the message already shown stands
    }
  }

  /** Events about this call from the events socket (the caller learns of answers here). */
  onCallEvent(event) {
    if (this.finished) return;
    const call = event.call || {};
    this.call = { ...this.call, ...call };
    this.emit("roster"); // who rings, who answered, who declined
    switch (event.type) {
      case "call_accepted":
        if (this.state === "outgoing") this.setState("connecting", "Answered, connecting…");
        break;
      case "call_declined":
        if (call.status === "declined") this.finish(call);
        else this.emit("notice", { message: `${event.actorName || "Someone"} declined.` });
        break;
      case "call_missed":
      case "call_cancelled":
      case "call_ended":
        this.finish(call);
        break;
      default:
        break;
    }
  }

  // --- peers ---------------------------------------------------------------------------------

  peerPresent(userId) {
    const existing = this.peers.get(userId);
    if (existing?.pc && LIVE_PEER_STATES.has(existing.pc.connectionState) && existing.pc.remoteDescription) {
      return; // already connected (or connecting) to them; a signaling reconnect changes nothing
    }
    if (this.state === "outgoing") this.setState("connecting", "Connecting…");
    if (this.selfId < userId) {
      this.offerTo(userId).catch((err) => this.peerError(userId, err));
    } else {
      this.ensurePeer(userId); // they offer; show them as connecting meanwhile
    }
  }

  /** ``leave`` is per socket: a peer whose media still flows may only be reconnecting its
   * signaling (or have closed a second device), so give them a moment to join again. */
  peerLeft(userId) {
    const peer = this.peers.get(userId);
    if (peer?.pc?.connectionState !== "connected") {
      this.peerGone(userId);
      return;
    }
    clearTimeout(this.leaveTimers.get(userId));
    this.leaveTimers.set(
      userId,
      setTimeout(() => this.peerGone(userId), LEAVE_GRACE_MS),
    );
  }

  peerGone(userId) {
    if (this.finished) return;
    const peer = this.peers.get(userId);
    if (!peer) return;
    peer.pc?.close();
    this.peers.delete(userId);
    this.reconnecting.delete(userId);
    this.departed.add(userId);
    this.emit("peer-removed", { userId });
    if (this.state === "connected" && !this.isMediaConnected()) this.setState("connecting", "Waiting for others…");
  }

  ensurePeer(userId, { fresh = false } = {}) {
    let peer = this.peers.get(userId);
    if (peer && fresh && peer.pc) {
      peer.pc.close();
      peer.pc = null;
    }
    if (!peer) {
      peer = new Peer(userId);
      this.peers.set(userId, peer);
      this.emit("peer-added", { userId, peer });
    }
    if (!peer.pc) {
      peer.pc = this.newConnection(peer);
      peer.stream = new MediaStream();
      peer.pendingCandidates = this.pendingCandidates.get(userId) || [];
      this.pendingCandidates.delete(userId);
      this.emit("peer-stream", { userId, stream: peer.stream });
    }
    return peer;
  }

  newConnection(peer) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    if (!this.hasVideo && this.call.call_type === "video") pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate && pc === peer.pc) {
        this.signaling.send({ type: "ice_candidate", target_id: peer.userId, candidate: event.candidate.toJSON() });
      }
    });
    pc.addEventListener("track", (event) => {
      if (pc !== peer.pc) return;
      peer.stream.addTrack(event.track);
      this.emit("peer-stream", { userId: peer.userId, stream: peer.stream });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== peer.pc) return;
      this.onPeerConnectionState(peer);
    });
    return pc;
  }

  onPeerConnectionState(peer) {
    const state = peer.pc.connectionState;
    if (state === "connected") this.reconnecting.delete(peer.userId);
    this.emit("peer-state", { userId: peer.userId, state });
    if (state === "connected") {
      peer.everConnected = true;
      this.sendMediaState(peer.userId);
      this.setState("connected", "Connected");
    } else if (state === "disconnected" && !this.isMediaConnected()) {
      this.setState("reconnecting", "Connection interrupted, reconnecting…");
    } else if (state === "failed") {
      // The smaller id offers again (with a fresh connection); the other waits for it.
      this.emit("notice", { message: "The media connection failed; trying again…" });
      if (this.selfId < peer.userId) this.offerTo(peer.userId).catch((err) => this.peerError(peer.userId, err));
      if (!this.isMediaConnected()) this.setState("reconnecting", "Connection lost, reconnecting…");
    }
  }

  /** Each other participant's part in the call as this tab sees it, by name:
   * ``ringing`` (invited, not answered), ``connecting`` (answered, no media yet), ``connected``,
   * ``reconnecting`` (their connection to the server or to us dropped), or how their part
   * ended: ``declined``, ``missed``, ``left``. From the call's record (the events socket keeps it
   * current), the signaling socket's join/leave/reconnecting messages, and the media connections. */
  roster() {
    // by name: the call's own order of participants is not one to rely on
    const key = (p) => `${nameOf(p.user_id).toLocaleLowerCase()}\u0000${p.user_id}`;
    return (this.call.participants || [])
      .filter((p) => p.user_id !== this.selfId)
      .sort((a, b) => key(a).localeCompare(key(b)))
      .map((p) => ({ userId: p.user_id, state: this.rosterState(p) }));
  }

  rosterState(participant) {
    const userId = participant.user_id;
    const media = this.peers.get(userId)?.pc?.connectionState;
    if (this.reconnecting.has(userId) || (media && ["disconnected", "failed"].includes(media))) return "reconnecting";
    if (media === "connected") return "connected";
    if (this.peers.has(userId)) return "connecting";
    if (this.departed.has(userId) && participant.state === "joined") return "left";
    if (participant.state === "joined") return "connecting";
    return participant.state; // ringing, declined, missed, left
  }

  /** In a group call, read the call again while anyone rings (see RINGING_REREAD_MS). */
  watchRinging() {
    clearTimeout(this.ringingTimer);
    const roster = this.roster();
    if (this.finished || roster.length < 2 || !roster.some((r) => r.state === "ringing")) return;
    this.ringingTimer = setTimeout(async () => {
      try {
        const call = await this.api.getCall(this.callId);
        if (this.finished) return;
        this.call = { ...this.call, participants: call.participants };
        this.emit("roster");
      } catch {
        // the next read, or the events socket, will tell
      }
      this.watchRinging();
    }, RINGING_REREAD_MS);
  }

  isMediaConnected() {
    return [...this.peers.values()].some((p) => p.pc?.connectionState === "connected");
  }

  async offerTo(userId) {
    const peer = this.ensurePeer(userId, { fresh: true });
    const pc = peer.pc;
    await pc.setLocalDescription(await pc.createOffer());
    if (pc !== peer.pc) return;
    this.signaling.send({ type: "offer", target_id: userId, sdp: pc.localDescription.sdp });
  }

  async handleOffer(from, sdp) {
    const peer = this.ensurePeer(from, { fresh: true });
    const pc = peer.pc;
    await pc.setRemoteDescription({ type: "offer", sdp });
    await this.flushCandidates(peer);
    await pc.setLocalDescription(await pc.createAnswer());
    if (pc !== peer.pc) return;
    this.signaling.send({ type: "answer", target_id: from, sdp: pc.localDescription.sdp });
  }

  async handleAnswer(from, sdp) {
    const peer = this.peers.get(from);
    if (!peer?.pc || peer.pc.signalingState !== "have-local-offer") return; // stale
    await peer.pc.setRemoteDescription({ type: "answer", sdp });
    await this.flushCandidates(peer);
  }

  handleCandidate(from, candidate) {
    const peer = this.peers.get(from);
    if (!peer?.pc) {
      const queued = this.pendingCandidates.get(from) || [];
      queued.push(candidate);
      this.pendingCandidates.set(from, queued);
      return;
    }
    if (!peer.pc.remoteDescription) {
      peer.pendingCandidates.push(candidate);
      return;
    }
    peer.pc.addIceCandidate(candidate).catch(() => {
      // a candidate for an older connection: harmless
    });
  }

  async flushCandidates(peer) {
    const queued = peer.pendingCandidates.splice(0);
    for (const candidate of queued) {
      try {
        await peer.pc.addIceCandidate(candidate);
      } catch {
        // as above
      }
    }
  }

  peerError(userId, error) {
    this.emit("notice", { message: `Could not connect to ${nameOf(userId)}: ${error.message || error}` });
  }

  remoteMedia(userId, type, muted) {
    const peer = this.peers.get(userId) || this.ensurePeer(userId);
    if (type === "mute_audio") peer.audioMuted = muted;
    else peer.videoMuted = muted;
    this.emit("peer-media", { userId, audioMuted: peer.audioMuted, videoMuted: peer.videoMuted });
  }

  // --- local controls ---------------------------------------------------------------------

  setAudioMuted(muted) {
    this.audioMuted = muted;
    for (const track of this.localStream.getAudioTracks()) track.enabled = !muted;
    this.signaling?.send({ type: "mute_audio", muted });
  }

  setVideoMuted(muted) {
    this.videoMuted = muted;
    for (const track of this.localStream.getVideoTracks()) track.enabled = !muted;
    this.signaling?.send({ type: "mute_video", muted });
  }

  /** Tell a newly connected peer what is muted here (it missed earlier messages). */
  sendMediaState(userId) {
    if (this.audioMuted) this.signaling.send({ type: "mute_audio", target_id: userId, muted: true });
    if (this.videoMuted) this.signaling.send({ type: "mute_video", target_id: userId, muted: true });
  }

  /** Hang up: before an answer the caller cancels the call; otherwise this user leaves it
   * (the server ends it when fewer than two are left). */
  async hangup() {
    if (this.finished) return;
    const cancel = this.role === "caller" && this.call.status === "ringing" && this.state === "outgoing";
    let call = { ...this.call, status: "ended" };
    try {
      call = cancel ? await this.api.endCall(this.callId) : await this.api.leaveCall(this.callId);
    } catch (error) {
      if (error.code !== "CONFLICT") {
        this.emit("notice", { message: `Hang-up not recorded: ${error.message}` });
      }
    }
    const stillOn = ["ringing", "active"].includes(call.status);
    this.finish(call, { message: stillOn ? "You left the call" : undefined });
  }

  /** Stop everything; ``call`` (status, end_reason, duration) says how it ended. Idempotent. */
  finish(call, { message } = {}) {
    if (this.finished) return;
    this.call = { ...this.call, ...call };
    this.finished = true;
    this.state = "ended";
    clearTimeout(this.ringingTimer);
    this.signaling?.stop();
    for (const timer of this.leaveTimers.values()) clearTimeout(timer);
    for (const peer of this.peers.values()) peer.pc?.close();
    for (const track of this.localStream.getTracks()) track.stop();
    this.emit("ended", { call: this.call, message });
  }

  /** For tests and troubleshooting: each peer's connection state and received video frames. */
  async stats() {
    const out = [];
    for (const peer of this.peers.values()) {
      const entry = { userId: peer.userId, connectionState: peer.pc?.connectionState ?? "closed" };
      entry.framesDecoded = 0;
      entry.audioPacketsReceived = 0;
      if (peer.pc) {
        const report = await peer.pc.getStats();
        report.forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") entry.framesDecoded += s.framesDecoded || 0;
          if (s.type === "inbound-rtp" && s.kind === "audio") entry.audioPacketsReceived += s.packetsReceived || 0;
        });
      }
      out.push(entry);
    }
    return out;
  }
}
