// The REST API (/v1), in its envelope: {success, data} or {success: false, error: {code, message}}.
// Every failure becomes an ApiError with a message fit to show a person.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "NETWORK_ERROR", details = {}, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
    // {field: message} for a form to show each beside its field; null for other errors
    this.fieldErrors = code === "VALIDATION_ERROR" ? fieldErrors(details) : null;
  }

  /** The service could not be reached at all (down, frozen, or this device offline). */
  get unreachable() {
    return this.code === "NETWORK_ERROR" && this.status === 0;
  }
}

const FRIENDLY = {
  NETWORK_ERROR: "Cannot reach the service. Check your connection; retrying may help.",
  UNAUTHORIZED: "Your session has expired. Please log in again.",
  FORBIDDEN: "You are not allowed to do that.",
  NOT_FOUND: "Not found.",
  CONFLICT: "That is not possible right now.",
  RATE_LIMITED: "Too many requests.",
  PERSISTENCE_UNAVAILABLE: "The service's database is unavailable right now; try again shortly.",
  INTERNAL_ERROR: "The service had a problem. Try again.",
};

/** A VALIDATION_ERROR's details as {field: "the messages, in plain words"} (the service's
 * messages are sentences already; a nested field's are flattened). */
export function fieldErrors(details) {
  const out = {};
  for (const [field, messages] of Object.entries(details || {})) {
    const list = Array.isArray(messages) ? messages : [messages];
    out[field] = list.map((m) => (typeof m === "string" ? m : Object.values(m || {}).flat().join(" "))).join(" ");
  }
  return out;
}

/** One sentence for a whole VALIDATION_ERROR, for places with no field to put it beside. */
function validationMessage(errors) {
  const texts = Object.values(errors).filter(Boolean);
  return texts.length ? texts.join(" ") : null;
}

export class Api {
  constructor(session, { base = "/v1", onLoggedOut = () => {} } = {}) {
    this.session = session;
    this.base = base;
    this.onLoggedOut = onLoggedOut;
    this.refreshing = null;
  }

  async request(method, path, { body, auth = true, retry = true } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.session.accessToken) headers.Authorization = `Bearer ${this.session.accessToken}`;
    let response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(FRIENDLY.NETWORK_ERROR);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      // not JSON (a proxy's error page): handled below by status
    }
    if (response.ok && payload?.success !== false) return payload?.data ?? null;

    const error = payload?.error ?? {};
    const code = error.code || (response.status >= 500 ? "INTERNAL_ERROR" : "NETWORK_ERROR");
    if (response.status === 401 && auth && retry && this.session.refreshToken) {
      if (await this.refresh()) return this.request(method, path, { body, auth, retry: false });
    }
    if (response.status === 401 && auth) {
      this.session.clear();
      this.onLoggedOut(FRIENDLY.UNAUTHORIZED);
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || null;
    let message = error.message || FRIENDLY[code] || `The service answered ${response.status}.`;
    if (code === "VALIDATION_ERROR") message = validationMessage(fieldErrors(error.details)) || message;
    if (code === "RATE_LIMITED" && retryAfter) message = `Too many requests; try again in ${retryAfter} s.`;
    throw new ApiError(message, { status: response.status, code, details: error.details, retryAfter });
  }

  /** A new access token from the refresh token; one refresh at a time. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.request("POST", "/auth/refresh", {
        body: { refresh_token: this.session.refreshToken },
        auth: false,
      })
        .then((data) => {
          // Refresh tokens rotate: the one sent is spent, keep its replacement.
          this.session.store({ accessToken: data.access_token, refreshToken: data.refresh_token });
          return true;
        })
        .catch(() => false)
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  // --- accounts ---
  async login(email, password) {
    const data = await this.request("POST", "/auth/login", { body: { email, password }, auth: false });
    this.session.store({ accessToken: data.access_token, refreshToken: data.refresh_token, user: data.user });
    return data.user;
  }
  register(fields) {
    return this.request("POST", "/auth/register", { body: fields, auth: false });
  }
  async logout() {
    try {
      await this.request("POST", "/auth/logout", { body: { refresh_token: this.session.refreshToken }, retry: false });
    } finally {
      this.session.clear();
    }
  }
  me() {
    return this.request("GET", "/users/me");
  }
  /** {user_id, username, display_name} of the one user with exactly this email or username. */
  lookupUser(query) {
    return this.request("GET", `/users/lookup?${new URLSearchParams({ q: query })}`);
  }

  // --- conversations and calls ---
  /** Every conversation of mine, page after page: the service answers a page and its
   * ``next_cursor`` (null on the last page). */
  async conversations() {
    const all = [];
    let cursor = null;
    for (let pages = 0; pages < 100; pages += 1) {
      const query = cursor ? `?${new URLSearchParams({ cursor })}` : "";
      const data = await this.request("GET", `/conversations${query}`);
      all.push(...(data.conversations || []));
      cursor = data.next_cursor;
      if (!cursor) break;
    }
    return all;
  }
  conversation(conversationId) {
    return this.request("GET", `/conversations/${encodeURIComponent(conversationId)}`);
  }
  createConversation({ type, memberIds, title = "" }) {
    return this.request("POST", "/conversations", { body: { type, title, member_ids: memberIds } });
  }
  initiateCall({ conversationId, calleeIds, callType }) {
    return this.request("POST", "/calls/initiate", {
      body: { conversation_id: conversationId, callee_ids: calleeIds, call_type: callType },
    });
  }
  getCall(callId) {
    return this.request("GET", `/calls/${callId}`);
  }
  joinCall(callId) {
    return this.request("POST", `/calls/${callId}/join`);
  }
  declineCall(callId) {
    return this.request("POST", `/calls/${callId}/decline`);
  }
  leaveCall(callId) {
    return this.request("POST", `/calls/${callId}/leave`);
  }
  endCall(callId, reason) {
    return this.request("POST", `/calls/${callId}/end`, { body: reason ? { reason } : {} });
  }
  history({ limit = 20, cursor, status, direction } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    if (status) query.set("status", status);
    if (direction) query.set("direction", direction);
    return this.request("GET", `/calls?${query}`);
  }
  analytics() {
    return this.request("GET", "/calls/analytics");
  }
  iceServers() {
    return this.request("GET", "/calls/ice-servers");
  }
}
