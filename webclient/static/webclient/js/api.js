// The REST API (/v1), in its envelope: {success, data} or {success: false, error: {code, message}}.
// Every failure becomes an ApiError with a message fit to show a person.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "NETWORK_ERROR", details = {}, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
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

/** The first readable message of a VALIDATION_ERROR's details, naming its field. */
function validationMessage(details) {
  for (const [field, messages] of Object.entries(details || {})) {
    const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
    return field === "non_field_errors" ? text : `${field.replace(/_/g, " ")}: ${text}`;
  }
  return null;
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
    if (code === "VALIDATION_ERROR") message = validationMessage(error.details) || message;
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
  conversations() {
    return this.request("GET", "/conversations").then((d) => d.conversations);
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
