// The home screen's two panels: conversations (start a call, create a conversation) and call
// history with the analytics summary. Data comes from the REST API only.

import { formatDuration } from "./call.js";
import { $, formatWhen, h, initials, submitForm, toast } from "./dom.js";
import { findPerson, knowsConversation, learnConversation, nameOf, rememberConversation, within } from "./people.js";

const HISTORY_NAMES_WAIT_MS = 2000; // history shows generic labels rather than wait longer for names

const STATUS_LABELS = {
  ringing: "Ringing",
  active: "In progress",
  ended: "Answered",
  missed: "Missed",
  declined: "Declined",
  cancelled: "Cancelled",
  failed: "Failed",
};

export function otherMembers(conversation, selfId) {
  return conversation.members.map((m) => m.user_id).filter((id) => id !== selfId);
}

export function conversationTitle(conversation, selfId) {
  return conversation.title || otherMembers(conversation, selfId).map(nameOf).join(", ") || "Just you";
}

export class Home {
  constructor({ api, session, onCall, onCallBack }) {
    this.api = api;
    this.session = session;
    this.onCall = onCall;
    this.onCallBack = onCallBack;
    this.cursor = null;
    this.historyRead = 0; // a newer read of the history wins over a slower older one
    $("#tab-conversations").addEventListener("click", () => this.showPanel("conversations"));
    $("#tab-history").addEventListener("click", () => this.showPanel("history"));
    $("#history-more").addEventListener("click", () => this.loadHistory({ more: true }));
    $("#conversation-form").addEventListener("submit", (e) => this.createConversation(e));
    $("#history-missed").addEventListener("change", () => this.loadHistory());
  }

  get panel() {
    return $("#panel-history").hidden ? "conversations" : "history";
  }

  showPanel(name) {
    $("#panel-conversations").hidden = name !== "conversations";
    $("#panel-history").hidden = name !== "history";
    $("#tab-conversations").setAttribute("aria-selected", String(name === "conversations"));
    $("#tab-history").setAttribute("aria-selected", String(name === "history"));
    if (name === "history") this.loadHistory();
    else this.loadConversations();
  }

  refresh() {
    if (this.panel === "history") this.loadHistory();
    else this.loadConversations();
  }

  // --- conversations ------------------------------------------------------------------------

  async loadConversations() {
    $("#my-username").textContent = this.session.user?.username ?? "";
    const list = $("#conversation-list");
    list.setAttribute("aria-busy", "true");
    try {
      const conversations = await this.api.conversations();
      conversations.forEach(rememberConversation);
      list.replaceChildren(
        ...(conversations.length
          ? conversations.map((c) => this.conversationCard(c))
          : [h("p", { class: "empty" }, "No conversations yet. Create one below with another person's email or username.")]),
      );
    } catch (error) {
      list.replaceChildren(this.errorRow(`Could not load conversations: ${error.message}`, () => this.loadConversations()));
    } finally {
      list.removeAttribute("aria-busy");
    }
  }

  conversationCard(conversation) {
    const selfId = this.session.userId;
    const title = conversationTitle(conversation, selfId);
    const others = otherMembers(conversation, selfId);
    const callButton = (callType, label) =>
      h(
        "button",
        {
          class: `button ${callType === "video" ? "primary" : "secondary"}`,
          type: "button",
          dataset: { callType },
          disabled: others.length === 0,
          onclick: () => this.onCall(conversation, callType),
        },
        label,
      );
    return h(
      "article",
      { class: "row conversation", dataset: { conversationId: conversation.conversation_id } },
      h("div", { class: "avatar small", "aria-hidden": "true" }, initials(title)),
      h(
        "div",
        { class: "row-main" },
        h("div", { class: "row-title" }, title),
        h(
          "div",
          { class: "row-sub" },
          conversation.type === "group" ? `Group · ${conversation.members.length} people` : "Direct",
        ),
      ),
      h("div", { class: "row-actions" }, callButton("audio", "Audio"), callButton("video", "Video")),
    );
  }

  async createConversation(event) {
    await submitForm(event, async (form) => {
      const ids = await this.memberIds(form.who.value);
      const conversation = await this.api.createConversation({
        type: ids.length > 1 || form.title.value.trim() ? "group" : "direct",
        memberIds: ids,
        title: form.title.value.trim(),
      });
      rememberConversation(conversation);
      form.closest("details").open = false;
      const others = otherMembers(conversation, this.session.userId).map(nameOf);
      toast(`Conversation with ${others.join(", ")} created.`, { kind: "success", timeout: 3000 });
      this.loadConversations();
    });
  }

  /** The user ids of the people typed in "Who" (commas between them), looked up one by one;
   * the first one that cannot be used stops it with a message fit to show. */
  async memberIds(text) {
    const me = this.session.user || {};
    const isMe = (typed) =>
      [me.email, me.username].some((mine) => mine && mine.toLowerCase() === typed.toLowerCase());
    const ids = [];
    for (const typed of text.split(",").map((s) => s.trim()).filter(Boolean)) {
      if (isMe(typed)) throw new Error("That is you; name someone else.");
      const person = await findPerson(this.api, typed);
      if (person.user_id === this.session.userId) throw new Error("That is you; name someone else.");
      if (!ids.includes(person.user_id)) ids.push(person.user_id);
    }
    if (!ids.length) throw new Error("Name someone: an email address or a username.");
    return ids;
  }

  // --- history ------------------------------------------------------------------------------

  /** "Missed calls only": calls to me that nobody answered. */
  historyFilter() {
    return $("#history-missed").checked ? { status: "missed", direction: "incoming" } : {};
  }

  async loadHistory({ more = false } = {}) {
    const list = $("#history-list");
    if (!more) this.cursor = null;
    const read = ++this.historyRead;
    const filter = this.historyFilter();
    list.setAttribute("aria-busy", "true");
    list.dataset.filter = filter.status || "all";
    try {
      const [page, analytics] = await Promise.all([
        this.api.history({ cursor: more ? this.cursor : undefined, ...filter }),
        more ? null : this.api.analytics(),
      ]);
      await this.learnNames(page.calls);
      if (read !== this.historyRead) return; // the filter changed meanwhile: a newer read shows
      const rows = page.calls.map((c) => this.historyRow(c));
      const none = filter.status ? "No missed calls." : "No calls yet.";
      if (more) list.append(...rows);
      else list.replaceChildren(...(rows.length ? rows : [h("p", { class: "empty" }, none)]));
      this.cursor = page.next_cursor;
      $("#history-more").hidden = !this.cursor;
      if (analytics) this.renderAnalytics(analytics);
    } catch (error) {
      list.replaceChildren(this.errorRow(`Could not load the history: ${error.message}`, () => this.loadHistory()));
    } finally {
      list.removeAttribute("aria-busy");
    }
  }

  /** Names for calls of conversations not read yet (the list may still be loading). */
  learnNames(calls) {
    const unknown = new Set(calls.map((c) => c.conversation_id).filter((id) => id && !knowsConversation(id)));
    const reads = [...unknown].map((id) => learnConversation(this.api, id));
    return within(Promise.all(reads), HISTORY_NAMES_WAIT_MS, null);
  }

  historyRow(call) {
    const selfId = this.session.userId;
    const outgoing = call.caller_id === selfId;
    const others = call.participants.map((p) => p.user_id).filter((id) => id !== selfId);
    let label = STATUS_LABELS[call.status] || call.status;
    if (call.status === "missed" && outgoing) label = "No answer";
    if (call.end_reason === "connection_lost") label = `${label} · connection lost`;
    return h(
      "article",
      {
        class: "row call-row",
        dataset: {
          callId: call.call_id,
          status: call.status,
          endReason: call.end_reason || "",
          direction: outgoing ? "outgoing" : "incoming",
        },
      },
      h(
        "div",
        { class: `direction ${outgoing ? "out" : "in"}`, title: outgoing ? "Outgoing" : "Incoming" },
        outgoing ? "↗" : "↙",
      ),
      h(
        "div",
        { class: "row-main" },
        h("div", { class: "row-title" }, others.map(nameOf).join(", ") || "Call"),
        h(
          "div",
          { class: "row-sub" },
          `${outgoing ? "Outgoing" : "Incoming"} ${call.call_type} · ${formatWhen(call.started_at)}`,
        ),
      ),
      h(
        "div",
        { class: "row-end" },
        h("span", { class: `status status-${call.status}` }, label),
        h("span", { class: "duration" }, call.duration_seconds ? formatDuration(call.duration_seconds) : "—"),
      ),
      h(
        "button",
        {
          class: "button secondary small call-back",
          type: "button",
          title: `Call ${others.map(nameOf).join(", ") || "them"} again (${call.call_type})`,
          disabled: others.length === 0,
          onclick: () => this.onCallBack(call),
        },
        "Call back",
      ),
    );
  }

  renderAnalytics(a) {
    // Each label says what it counts (the service's analytics: GET /v1/calls/analytics).
    const stat = (label, value, key, title) =>
      h(
        "div",
        { class: "stat", dataset: { stat: key }, title },
        h("div", { class: "stat-value" }, value),
        h("div", { class: "stat-label" }, label),
      );
    $("#analytics").replaceChildren(
      stat("Calls", a.total, "total", "Every call you made or received"),
      stat("Answered", a.answered, "answered", "Calls someone answered"),
      stat("Missed", a.missed, "missed", "Calls nobody answered"),
      stat("Answer rate", `${Math.round((a.answer_rate || 0) * 100)}%`, "answer_rate", "Answered calls out of all calls"),
      stat("Avg. answered call", formatDuration(a.avg_duration_seconds || 0), "avg_duration", "Average length of an answered call (minutes:seconds)"),
      stat("Total talk time", formatDuration(a.total_talk_seconds || 0), "talk_time", "All answered calls together (minutes:seconds)"),
    );
  }

  errorRow(message, retry) {
    return h(
      "div",
      { class: "error-row", role: "alert" },
      message,
      h("button", { class: "button ghost small", type: "button", onclick: retry }, "Retry"),
    );
  }
}
