// The SecureConnect browser client: logging in, the events socket (ringing), starting and
// answering calls. Screens live in home.js and callview.js, a call's WebRTC in call.js.

import { Api } from "./api.js";
import { CallSession, MediaError, describeOutcome, openLocalMedia } from "./call.js";
import { CallView } from "./callview.js";
import { $, hideBanner, initials, showBanner, submitForm, toast } from "./dom.js";
import { Home, otherMembers } from "./home.js";
import { CallNotifier } from "./notify.js";
import { Ringer } from "./ringer.js";
import {
  conversationOf,
  forgetPeople,
  groupName,
  knowsConversation,
  learnConversation,
  nameOf,
  rememberPerson,
  within,
} from "./people.js";
import { Session } from "./session.js";
import { EventsSocket, NOT_ANSWERING } from "./sockets.js";

const TERMINAL = new Set(["ended", "missed", "declined", "cancelled", "failed"]);
// An incoming call of a conversation not loaded here waits this long for its members' names
// before it rings; a slower answer names the caller on the panel when it comes.
const RING_NAME_WAIT_MS = 1000;

class App {
  constructor() {
    this.session = new Session();
    this.api = new Api(this.session, {
      base: document.body.dataset.apiBase,
      onLoggedOut: (message) => this.loggedOut(message),
    });
    this.events = null;
    this.call = null; // the CallSession on screen
    this.busy = false; // a call is being set up
    this.incoming = new Map(); // call_id -> the incoming_call event, while it rings here
    this.naming = new Set(); // call ids in `incoming` that wait (briefly) for the caller's name
    this.settled = new Set(); // call ids that rang here and were answered, declined or stopped
    this.ringer = new Ringer();
    this.notifier = new CallNotifier();
    this.home = new Home({
      api: this.api,
      session: this.session,
      onCall: (c, type) => this.startCall(c, type),
      onCallBack: (call) => this.callBack(call),
    });
    this.callView = new CallView({
      onClosed: () => {
        this.call = null;
        this.home.refresh();
        this.renderIncoming();
      },
      onRingback: (on) => (on ? this.ringer.start("ringback") : this.ringer.kind === "ringback" && this.ringer.stop()),
      conversationName: (conversationId) => groupName(conversationOf(conversationId), this.session.userId),
    });
    // A call that starts ringing while the tab is visible and goes on ringing after it is hidden.
    document.addEventListener("visibilitychange", () => this.renderIncoming());
    this.bindForms();
    // For tests and troubleshooting (the end-to-end tests read WebRTC stats through it).
    window.secureconnect = { app: this, stats: () => this.call?.stats() ?? Promise.resolve([]) };
  }

  async boot() {
    if (!this.session.loggedIn) return this.showLogin();
    try {
      this.session.store({ user: await this.api.me() });
      this.afterLogin();
    } catch (error) {
      if (this.session.loggedIn) {
        // Not a bad token: stay logged in and let the socket retry. Unreachable, its banner says
        // so (once, not here as well); the lists reload when it is back.
        if (!error.unreachable) toast(error.message, { kind: "error" });
        this.afterLogin();
      } else {
        this.showLogin();
      }
    }
  }

  showScreen(name) {
    document.body.dataset.screen = name;
    for (const screen of document.querySelectorAll(".screen")) screen.hidden = screen.id !== `screen-${name}`;
  }

  // --- logging in ---------------------------------------------------------------------------

  bindForms() {
    const switchTab = (register) => {
      $("#login-form").hidden = register;
      $("#register-form").hidden = !register;
      $("#tab-login").setAttribute("aria-selected", String(!register));
      $("#tab-register").setAttribute("aria-selected", String(register));
    };
    $("#tab-login").addEventListener("click", () => switchTab(false));
    $("#tab-register").addEventListener("click", () => switchTab(true));
    $("#login-form").addEventListener("submit", (e) => this.submit(e, (f) => this.api.login(f.email.value, f.password.value)));
    $("#register-form").addEventListener("submit", (e) =>
      this.submit(e, async (f) => {
        await this.api.register({
          email: f.email.value,
          username: f.username.value,
          display_name: f.display_name.value,
          password: f.password.value,
        });
        return this.api.login(f.email.value, f.password.value);
      }),
    );
    $("#logout").addEventListener("click", () => this.logout());
    $("#notify-calls").addEventListener("click", async () => {
      const permission = await this.notifier.ask();
      this.renderNotifyButton();
      if (permission === "denied") {
        toast("Call alerts are blocked in this browser's site settings.", { kind: "warning" });
      } else if (permission === "granted") {
        toast("You will be alerted to calls while this tab is in the background.", { kind: "success", timeout: 4000 });
      }
    });
    $("#accept-call").addEventListener("click", () => this.acceptCall(this.ringingCallId()));
    $("#decline-call").addEventListener("click", () => this.declineCall(this.ringingCallId()));
  }

  async submit(event, action) {
    if (await submitForm(event, action)) this.afterLogin();
  }

  /** "Call alerts" is offered while the browser has not been asked yet. */
  renderNotifyButton() {
    $("#notify-calls").hidden = !this.session.loggedIn || this.notifier.permission !== "default";
  }

  showLogin() {
    this.showScreen("login");
    $("#logout").hidden = true;
    $("#notify-calls").hidden = true;
    $("#me-name").textContent = "";
    this.setConnection("offline", "offline");
    forgetPeople();
  }

  afterLogin() {
    const user = this.session.user;
    rememberPerson(user);
    $("#me-name").textContent = user.display_name || user.username;
    $("#logout").hidden = false;
    this.renderNotifyButton();
    this.showScreen("home");
    this.home.showPanel("conversations");
    this.startEvents();
  }

  async logout() {
    await this.call?.hangup();
    this.stopEvents();
    try {
      await this.api.logout();
    } catch {
      // logged out locally all the same
    }
    this.showLogin();
  }

  loggedOut(message) {
    this.stopEvents();
    this.call?.finish({ status: "failed" }, { message });
    this.showLogin();
    toast(message, { kind: "error" });
  }

  // --- the events socket ----------------------------------------------------------------------

  setConnection(state, label) {
    const el = $("#connection");
    el.dataset.state = state;
    el.textContent = label;
  }

  startEvents() {
    this.stopEvents();
    const events = new EventsSocket(this.api);
    this.events = events;
    let countdown = null;
    events.addEventListener("status", (e) => {
      clearInterval(countdown);
      const { state, reason, delay, reconnected } = e.detail;
      if (state === "connecting") this.setConnection("connecting", "connecting…");
      if (state === "online") {
        this.setConnection("online", "live");
        hideBanner();
        if (reconnected) {
          toast("Reconnected.", { kind: "success", timeout: 2500 });
          // What was read while the service was away (or failed to load) is read again.
          if (!this.call) this.home.refresh();
        }
        this.recoverRinging();
      }
      if (state === "retrying") {
        const until = Date.now() + delay;
        const frozen = e.detail.code === NOT_ANSWERING;
        const tick = () => {
          const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
          const label = frozen ? "not answering" : seconds ? `retrying in ${seconds} s` : "reconnecting…";
          this.setConnection("retrying", label);
          const what = frozen
            ? "The service is not answering."
            : e.detail.code === 1006
              ? "Cannot reach the service."
              : `Connection lost: ${reason}`;
          showBanner(`${what} Retrying${seconds ? ` in ${seconds} s` : "…"}`);
        };
        tick();
        countdown = setInterval(tick, 1000);
      }
    });
    events.addEventListener("message", (e) => this.onEvent(e.detail));
    events.addEventListener("unauthorized", () => this.loggedOut("Your session has expired. Please log in again."));
    events.start();
  }

  stopEvents() {
    this.events?.stop();
    this.events = null;
    this.incoming.clear();
    this.naming.clear();
    this.renderIncoming();
    hideBanner();
  }

  /** After (re)connecting: calls that started ringing while the socket was down. */
  async recoverRinging() {
    try {
      const page = await this.api.history({ status: "ringing", direction: "incoming", limit: 5 });
      for (const call of page.calls) {
        const me = call.participants.find((p) => p.user_id === this.session.userId);
        const known = this.incoming.has(call.call_id) || this.settled.has(call.call_id);
        if (me?.state === "ringing" && !known && this.call?.callId !== call.call_id) {
          const { call_id, conversation_id, caller_id, call_type } = call;
          this.ring({ type: "incoming_call", call_id, conversation_id, caller_id, call_type, call });
        }
      }
    } catch {
      // the socket's events are enough
    }
  }

  onEvent(event) {
    const call = event.call || {};
    if (event.type === "incoming_call") {
      this.ring(event);
      return;
    }
    if (this.incoming.has(event.call_id)) this.stopRingingIfDone(event);
    if (this.call?.callId === event.call_id) {
      this.call.onCallEvent({ ...event, actorName: event.actor_id ? nameOf(event.actor_id) : undefined });
    }
    if (TERMINAL.has(call.status) && !this.call) this.home.refresh();
  }

  /** Ringing stops here once this user no longer rings in the call (answered or declined on
   * another device, cancelled by the caller, missed, or over). */
  stopRingingIfDone(event) {
    const call = event.call || {};
    const me = (call.participants || []).find((p) => p.user_id === this.session.userId);
    if (call.status === "ringing" && me?.state === "ringing") return;
    if (call.status === "active" && me?.state === "ringing") return; // a group call: still invited
    this.settle(event.call_id);
    const self = event.actor_id === this.session.userId;
    let message;
    if (event.type === "call_accepted" && self) message = "Answered on another device.";
    else if (event.type === "call_declined" && self) message = "Declined on another device.";
    else if (event.type === "call_missed" && call.status !== "missed") {
      message = `Missed call from ${nameOf(call.caller_id)}`; // a group call that goes on without me
    } else message = describeOutcome(call, { selfId: this.session.userId, nameOf });
    const missed = event.type === "call_missed" && call.caller_id !== this.session.userId;
    const action = missed ? { label: "Call back", onClick: () => this.callBack(call) } : null;
    toast(message, { kind: self ? "info" : "warning", timeout: missed ? 20000 : 8000, action });
  }

  /** Ring for an incoming call, once its conversation's names are known (waiting at most
   * RING_NAME_WAIT_MS for them). It counts as ringing from the start, so a cancel that comes
   * meanwhile stops it before it is ever shown. */
  async ring(event) {
    const callId = event.call_id;
    if (this.call?.callId === callId || this.settled.has(callId) || this.incoming.has(callId)) return;
    this.incoming.set(callId, event);
    if (!knowsConversation(event.conversation_id)) {
      this.naming.add(callId);
      const learned = learnConversation(this.api, event.conversation_id);
      const inTime = await within(learned, RING_NAME_WAIT_MS, false);
      this.naming.delete(callId);
      if (!inTime) learned.then((known) => known && this.incoming.has(callId) && this.renderIncoming());
    }
    this.renderIncoming();
  }

  /** Stop ringing for a call, for good (a late history read must not bring it back). */
  settle(callId) {
    this.settled.add(callId);
    this.incoming.delete(callId);
    this.naming.delete(callId);
    this.renderIncoming();
  }

  /** The call the panel shows: the first one ringing here whose caller is named (or given up on). */
  ringingCallId() {
    for (const callId of this.incoming.keys()) if (!this.naming.has(callId)) return callId;
    return undefined;
  }

  renderIncoming() {
    const callId = this.ringingCallId();
    const panel = $("#incoming-call");
    this.notifier.stopAllBut(new Set(this.incoming.keys()));
    if (!callId) {
      panel.hidden = true;
      document.body.dataset.ringing = "false";
      if (this.ringer.kind === "incoming") this.ringer.stop();
      return;
    }
    const event = this.incoming.get(callId);
    const caller = nameOf(event.caller_id);
    const group = groupName(conversationOf(event.conversation_id), this.session.userId);
    const kind = `${event.call_type === "video" ? "video" : "audio"} call`;
    panel.dataset.callId = callId;
    panel.dataset.group = String(Boolean(group));
    $("#incoming-avatar").textContent = initials(caller);
    $("#incoming-title").textContent = `${caller} is calling`;
    $("#incoming-kind").textContent = group ? `Incoming group ${kind}` : `Incoming ${kind}`;
    $("#incoming-group").textContent = group;
    $("#incoming-group").hidden = !group;
    $("#accept-call").textContent = this.call && !this.call.finished ? "End current and accept" : "Accept";
    panel.hidden = false;
    document.body.dataset.ringing = "true";
    this.ringer.start("incoming");
    this.notifier.ring(callId, {
      title: `${caller} is calling`,
      body: group ? `Incoming group ${kind} · ${group}` : `Incoming ${kind}`,
    });
  }

  // --- calls ----------------------------------------------------------------------------------

  async prepareMedia(callType) {
    const media = await openLocalMedia(callType);
    let iceServers = [];
    try {
      iceServers = (await this.api.iceServers()).ice_servers;
    } catch (error) {
      if (error.unreachable) {
        // No call can start without the service: say that once, not "connecting directly" first.
        media.stream.getTracks().forEach((t) => t.stop());
        throw error;
      }
      toast(`No STUN/TURN servers (${error.message}); connecting directly.`, { kind: "warning" });
    }
    if (media.notice) toast(media.notice, { kind: "warning" });
    return { localStream: media.stream, iceServers };
  }

  async startCall(conversation, callType) {
    if ((this.call && !this.call.finished) || this.busy) {
      toast("You are already in a call.", { kind: "warning" });
      return;
    }
    this.busy = true;
    this.notifier.ask(); // a natural moment: the person is making a call (the answer comes later)
    const calleeIds = otherMembers(conversation, this.session.userId);
    const title = groupName(conversation, this.session.userId) || calleeIds.map(nameOf).join(", ");
    this.callView.preparing(title, "Starting…");
    let media = null;
    try {
      media = await this.prepareMedia(callType);
      let role = "caller";
      let call;
      try {
        call = await this.api.initiateCall({ conversationId: conversation.conversation_id, calleeIds, callType });
      } catch (error) {
        if (error.code !== "CONFLICT" || !error.details?.call_id) throw error;
        // A call is already going on in this conversation (maybe they are calling us): join it.
        call = await this.api.joinCall(error.details.call_id);
        role = "callee";
        this.settle(call.call_id);
        toast("Joined the call already going on in this conversation.");
      }
      this.openSession({ call, role, ...media });
    } catch (error) {
      media?.localStream.getTracks().forEach((t) => t.stop());
      this.callView.close();
      toast(this.callError(error), { kind: "error", timeout: 10000 });
    } finally {
      this.busy = false;
    }
  }

  /** Call the people of a past call again (from history, or a missed call's message). */
  async callBack(call) {
    let conversation = conversationOf(call.conversation_id);
    if (!conversation) {
      try {
        conversation = await this.api.conversation(call.conversation_id);
      } catch (error) {
        toast(this.callError(error), { kind: "error", timeout: 10000 });
        return;
      }
    }
    this.home.showPanel("conversations");
    await this.startCall(conversation, call.call_type);
  }

  async acceptCall(callId) {
    if (!callId || this.busy) return;
    const event = this.incoming.get(callId);
    this.busy = true;
    this.notifier.ask();
    this.settle(callId);
    await this.call?.hangup();
    this.callView.preparing(nameOf(event.caller_id), "Answering…");
    let media = null;
    try {
      media = await this.prepareMedia(event.call_type);
      const call = await this.api.joinCall(callId);
      this.openSession({ call, role: "callee", ...media });
    } catch (error) {
      media?.localStream.getTracks().forEach((t) => t.stop());
      this.callView.close();
      toast(this.callError(error), { kind: "error", timeout: 10000 });
    } finally {
      this.busy = false;
    }
  }

  async declineCall(callId) {
    if (!callId) return;
    this.settle(callId);
    try {
      await this.api.declineCall(callId);
      toast("Call declined.", { timeout: 3000 });
    } catch (error) {
      toast(this.callError(error), { kind: "error" });
    }
    this.home.refresh();
  }

  callError(error) {
    if (error instanceof MediaError) return error.message;
    if (error.unreachable) {
      return "Cannot reach the service, so the call did not start. This page reconnects by itself; try again when it says live.";
    }
    if (error.code === "CONFLICT") return `The call is over or full: ${error.message}`;
    if (error.code === "FORBIDDEN") return `Not allowed: ${error.message}`;
    if (error.code === "NOT_FOUND") return "That call no longer exists.";
    return `Could not start the call: ${error.message}`;
  }

  openSession({ call, role, localStream, iceServers }) {
    const session = new CallSession({ api: this.api, selfId: this.session.userId, call, role, localStream, iceServers });
    this.call = session;
    this.callView.attach(session);
    session.start();
  }
}

const app = new App();
app.boot();
