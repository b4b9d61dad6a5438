// The in-call screen: remote tiles, the local preview, the controls, status and timer.
// It listens to a CallSession and calls its controls; it holds no call logic of its own.

import { describeOutcome, formatDuration } from "./call.js";
import { $, h, initials, toast } from "./dom.js";
import { nameOf } from "./people.js";

const ENDED_LINGER_MS = 3000; // how long the outcome stays on screen before the call view closes

// The two toggles: what the button shows in each state (its icon and its label both say it).
const TOGGLES = {
  "#toggle-audio": {
    off: { icon: "icon-mic", label: "Mic on", title: "Mute the microphone" },
    on: { icon: "icon-mic-off", label: "Mic off", title: "Unmute the microphone" },
  },
  "#toggle-video": {
    off: { icon: "icon-cam", label: "Camera on", title: "Turn the camera off" },
    on: { icon: "icon-cam-off", label: "Camera off", title: "Turn the camera on" },
    none: { icon: "icon-cam-off", label: "No camera", title: "No camera in this call (audio only)" },
  },
};

const ROSTER_LABELS = {
  ringing: "Ringing…",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  declined: "Declined",
  missed: "Didn't answer",
  left: "Left",
};

/** Show a toggle pressed (``pressed``: the microphone muted, the camera off) or not; ``absent``:
 * there is nothing to toggle (an audio call, or no usable camera). */
function setToggle(selector, pressed, { absent = false } = {}) {
  const button = $(selector);
  const look = TOGGLES[selector][absent ? "none" : pressed ? "on" : "off"];
  button.setAttribute("aria-pressed", String(pressed));
  button.title = look.title;
  button.querySelector(".icon").className = `icon ${look.icon}`;
  button.querySelector(".label").textContent = look.label;
}

export class CallView {
  constructor({ onClosed, onRingback, conversationName = () => "" }) {
    this.onClosed = onClosed;
    this.onRingback = onRingback;
    this.conversationName = conversationName;
    this.session = null;
    this.timer = null;
    this.root = $("#call-view");
    $("#toggle-audio").addEventListener("click", () => this.toggleAudio());
    $("#toggle-video").addEventListener("click", () => this.toggleVideo());
    $("#hangup").addEventListener("click", () => this.session?.hangup());
  }

  /** Show the view for a call being set up (before a session exists). */
  preparing(title, status) {
    this.reset();
    this.session = null;
    $("#call-peer").textContent = title;
    $("#call-placeholder .avatar").textContent = initials(title);
    this.status(status);
    this.root.hidden = false;
    document.body.dataset.callState = "starting";
  }

  reset() {
    clearInterval(this.timer);
    clearTimeout(this.closeTimer);
    $("#remote-grid").replaceChildren();
    this.updateGrid();
    $("#call-timer").textContent = "";
    $("#local-video").srcObject = null;
    this.root.classList.remove("ended", "audio-only");
    for (const selector of Object.keys(TOGGLES)) setToggle(selector, false);
    $("#local-audio-badge").hidden = true;
    $("#local-tile").dataset.videoMuted = "false";
    $("#roster").replaceChildren();
    $("#roster").hidden = true;
  }

  attach(session) {
    this.session = session;
    const others = session.call.participants.map((p) => p.user_id).filter((id) => id !== session.selfId);
    const group = others.length > 1 ? this.conversationName(session.call.conversation_id) : "";
    $("#call-peer").textContent = group || others.map(nameOf).join(", ") || "Call";
    $("#call-placeholder .avatar").textContent = initials($("#call-peer").textContent);
    $("#local-avatar").textContent = initials(nameOf(session.selfId));
    $("#local-video").srcObject = session.localStream;
    this.root.classList.toggle("audio-only", !session.hasVideo);
    $("#toggle-video").disabled = !session.hasVideo;
    setToggle("#toggle-video", false, { absent: !session.hasVideo });
    this.root.hidden = false;
    this.onState(session.state, session.role === "caller" ? `Calling ${$("#call-peer").textContent}…` : "Connecting…");

    // A session that is no longer on screen (hung up to answer another call) is not heard.
    // The roster is drawn again after anything that can change it.
    const on = (type, handler) =>
      session.addEventListener(type, (e) => {
        if (this.session !== session) return;
        handler(e.detail);
        this.renderRoster();
      });
    on("roster", () => {});
    on("state", (d) => this.onState(d.state, d.message));
    on("peer-added", (d) => this.addTile(d.userId));
    on("peer-stream", (d) => this.setStream(d.userId, d.stream));
    on("peer-state", (d) => this.setPeerState(d.userId, d.state));
    on("peer-media", (d) => this.setPeerMedia(d));
    on("peer-removed", (d) => {
      this.tile(d.userId)?.remove();
      this.updateGrid();
    });
    on("notice", (d) => toast(d.message, { kind: "info" }));
    on("ended", (d) => this.onEnded(d));
    on("outcome", (d) => this.status(this.outcomeText(d.call)));
    this.renderRoster();
  }

  /** In a group call, everyone else and where they are (ringing, connecting, connected,
   * reconnecting, or how they left); someone still ringing gets a tile saying so. */
  renderRoster() {
    const session = this.session;
    if (!session || session.finished) return;
    const roster = session.roster();
    const list = $("#roster");
    list.hidden = roster.length < 2;
    list.replaceChildren(
      ...roster.map(({ userId, state }) =>
        h(
          "li",
          { class: "roster-entry", dataset: { userId, state } },
          h("span", { class: "avatar tiny", "aria-hidden": "true" }, initials(nameOf(userId))),
          h("span", { class: "roster-name" }, nameOf(userId)),
          h("span", { class: "roster-state" }, ROSTER_LABELS[state] || state),
        ),
      ),
    );
    if (roster.length < 2) return; // a one-to-one call shows whom it calls in the placeholder
    for (const { userId, state } of roster) {
      const tile = this.tile(userId);
      if (state === "ringing" && !tile) {
        this.addTile(userId);
        this.setPeerState(userId, "ringing");
      } else if (tile?.dataset.state === "ringing" && state !== "ringing") {
        if (["declined", "missed", "left"].includes(state)) {
          tile.remove();
          this.updateGrid();
        } else {
          this.setPeerState(userId, state === "connected" ? "connected" : "new");
        }
      }
    }
  }

  status(text) {
    $("#call-status").textContent = text;
  }

  onState(state, message) {
    document.body.dataset.callState = state;
    this.root.dataset.state = state;
    if (message) this.status(message);
    this.onRingback(state === "outgoing");
    if (state === "connected" && !this.timer) {
      const tick = () => {
        $("#call-timer").textContent = formatDuration((Date.now() - this.session.connectedAt) / 1000);
      };
      tick();
      this.timer = setInterval(tick, 1000);
    }
  }

  tile(userId) {
    return $(`#remote-grid [data-user-id="${CSS.escape(userId)}"]`);
  }

  addTile(userId) {
    if (this.tile(userId)) return;
    const name = nameOf(userId);
    const tile = h(
      "div",
      { class: "remote-tile", dataset: { userId, audioMuted: "false", videoMuted: "false", state: "new" } },
      h("video", { autoplay: true, playsinline: true }),
      h("div", { class: "avatar", "aria-hidden": "true" }, initials(name)),
      h("span", { class: "tile-label" }, name),
      h("span", { class: "badge mic-badge" }, "Muted"),
      h("span", { class: "badge cam-badge" }, "Camera off"),
      h("span", { class: "peer-state" }, "Connecting…"),
    );
    $("#remote-grid").append(tile);
    this.updateGrid();
  }

  /** The grid's size drives its layout; with nobody yet, a placeholder shows who is called. */
  updateGrid() {
    const count = $("#remote-grid").children.length;
    $("#remote-grid").dataset.count = String(count);
    $("#call-placeholder").hidden = count > 0;
  }

  setStream(userId, stream) {
    this.addTile(userId);
    const video = this.tile(userId).querySelector("video");
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {});
  }

  setPeerState(userId, state) {
    const tile = this.tile(userId);
    if (!tile) return;
    if (this.root.classList.contains("ended") && state !== "ended") return; // connections closing after the end
    tile.dataset.state = state;
    const labels = {
      ringing: "Ringing…",
      new: "Connecting…",
      connecting: "Connecting…",
      disconnected: "Reconnecting…",
      reconnecting: "Reconnecting…",
      failed: "Lost",
      ended: "Call ended",
    };
    tile.querySelector(".peer-state").textContent = labels[state] || "";
  }

  setPeerMedia({ userId, audioMuted, videoMuted }) {
    const tile = this.tile(userId);
    if (!tile) return;
    const changed = tile.dataset.audioMuted !== String(audioMuted);
    tile.dataset.audioMuted = String(audioMuted);
    tile.dataset.videoMuted = String(videoMuted);
    if (changed) toast(`${nameOf(userId)} ${audioMuted ? "muted" : "unmuted"} their microphone`, { timeout: 3000 });
  }

  toggleAudio() {
    if (!this.session) return;
    const muted = !this.session.audioMuted;
    this.session.setAudioMuted(muted);
    setToggle("#toggle-audio", muted);
    $("#local-audio-badge").hidden = !muted;
  }

  toggleVideo() {
    if (!this.session) return;
    const muted = !this.session.videoMuted;
    this.session.setVideoMuted(muted);
    setToggle("#toggle-video", muted);
    $("#local-tile").dataset.videoMuted = String(muted);
  }

  outcomeText(call) {
    return describeOutcome(call, { selfId: this.session?.selfId, nameOf });
  }

  onEnded({ call, message }) {
    clearInterval(this.timer);
    this.timer = null;
    this.onRingback(false);
    const text = message || this.outcomeText(call);
    this.status(text);
    // The peers' media connections are closed with the call: no tile goes on saying "Reconnecting…".
    for (const tile of $("#remote-grid").children) this.setPeerState(tile.dataset.userId, "ended");
    this.root.classList.add("ended");
    this.root.dataset.state = "ended";
    document.body.dataset.callState = "ended";
    this.closeTimer = setTimeout(() => this.close(), ENDED_LINGER_MS);
    toast(text, { kind: call.status === "ended" ? "info" : "warning", timeout: 8000 });
  }

  /** Leave the view (after an outcome, or when setting up a call failed). */
  close() {
    clearTimeout(this.closeTimer);
    this.reset();
    this.root.hidden = true;
    this.root.dataset.state = "idle";
    this.session = null;
    document.body.dataset.callState = "idle";
    this.onClosed();
  }
}
