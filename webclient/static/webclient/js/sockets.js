// The two WebSockets of the service (docs/signaling.md), with the browser's way to authenticate:
// the access token offered as the subprotocol pair ["bearer", token].
//
// EventsSocket: /v1/ws/events, open while logged in; reconnects with exponential backoff.
// SignalingSocket: /v1/calls/ws/signaling?call_id=..., open during one call; reconnects a few
// times when the connection drops, never when the server says the call is over.

// The server keeps sockets alive with protocol pings a browser cannot see; an application ping
// every 10 s lets the client see that the server still answers. A server that is frozen (its
// process stopped, its machine swapping) keeps the TCP connection open and says nothing: with
// no answer to a ping within HEARTBEAT_TIMEOUT_MS, or no open socket within CONNECT_TIMEOUT_MS,
// the socket is given up and retried, so a frozen server is noticed within 20 s.
const PING_INTERVAL_MS = 10_000;
const HEARTBEAT_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;
// The close code this client reports for a server that stopped answering (none is sent).
export const NOT_ANSWERING = 4999;

export const CLOSE_REASONS = {
  1000: "Closed.",
  1006: "The connection was lost.",
  1011: "The server hit an error.",
  4400: "The request was not valid.",
  4401: "Your session has expired.",
  4403: "You are not allowed to join this call.",
  4404: "This call does not exist.",
  4409: "The call has already ended.",
  4429: "The server is busy.",
  4490: "The server closed the connection (too many or invalid messages).",
  4503: "The service is temporarily unavailable.",
  [NOT_ANSWERING]: "The service is not answering.",
};

// Codes after which trying again cannot help.
const FINAL_CODES = new Set([4400, 4403, 4404, 4409]);

export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path}`;
}

/** 1 s, 2 s, 4 s ... up to maxSeconds, with jitter (between half and all of it). */
export function backoffDelay(attempt, maxSeconds = 30) {
  const ceiling = Math.min(maxSeconds, 2 ** attempt);
  return Math.round((ceiling / 2 + (Math.random() * ceiling) / 2) * 1000);
}

class JsonSocket extends EventTarget {
  constructor(path, api) {
    super();
    this.path = path;
    this.api = api;
    this.ws = null;
    this.pinger = null;
    this.watchdog = null; // fires when the server has not answered in time
    this.awaitingAnswer = false;
    this.lastError = null;
    this.stopped = false;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  connect() {
    this.lastError = null;
    const ws = new WebSocket(socketUrl(this.path), ["bearer", this.api.session.accessToken]);
    this.ws = ws;
    this.expectAnswer(CONNECT_TIMEOUT_MS);
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.answered();
      this.pinger = setInterval(() => this.heartbeat(), PING_INTERVAL_MS);
      this.opened();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      this.answered(); // anything from the server shows it is alive
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "pong") return;
      if (message.type === "error" && message.close_code) {
        this.lastError = message; // the reason for the close that follows
        return;
      }
      this.emit("message", message);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      clearInterval(this.pinger);
      this.answered();
      this.ws = null;
      if (this.stopped) return;
      const code = this.lastError?.close_code ?? event.code;
      const reason = this.lastError?.message || event.reason || CLOSE_REASONS[code] || CLOSE_REASONS[1006];
      this.closed(code, reason);
    });
  }

  heartbeat() {
    if (this.awaitingAnswer) return; // the last ping's deadline stands
    if (this.send({ type: "ping" })) this.expectAnswer(HEARTBEAT_TIMEOUT_MS);
  }

  /** Unless the server says something within ``ms``, drop this socket as dead and retry. */
  expectAnswer(ms) {
    clearTimeout(this.watchdog);
    const ws = this.ws;
    this.awaitingAnswer = true;
    this.watchdog = setTimeout(() => {
      this.awaitingAnswer = false;
      if (ws !== this.ws || this.stopped) return;
      // A frozen server would not complete a closing handshake: forget the socket at once.
      clearInterval(this.pinger);
      this.ws = null;
      ws.close();
      this.closed(NOT_ANSWERING, CLOSE_REASONS[NOT_ANSWERING]);
    }, ms);
  }

  answered() {
    clearTimeout(this.watchdog);
    this.awaitingAnswer = false;
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pinger);
    this.answered();
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Reconnect after ``delay`` ms; a 4401 first gets a fresh access token. */
  async retry(code, reason, delay) {
    if (code === 4401) {
      if (!(await this.api.refresh())) {
        this.emit("unauthorized", { reason });
        return;
      }
      delay = 0;
    }
    this.emit("status", { state: "retrying", reason, delay, code });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped) this.connect();
    }, delay);
  }

  opened() {}
  closed() {}
}

/** A user's live call events (incoming_call, call_accepted, ...); reconnects until stopped. */
export class EventsSocket extends JsonSocket {
  constructor(api) {
    super("/v1/ws/events", api);
    this.attempt = 0;
    this.onOnline = () => {
      if (!this.ws && !this.stopped) {
        this.attempt = 0;
        this.retry(0, "Back online.", 0);
      }
    };
    window.addEventListener("online", this.onOnline);
  }

  start() {
    this.stopped = false;
    this.emit("status", { state: "connecting" });
    this.connect();
  }

  stop() {
    window.removeEventListener("online", this.onOnline);
    super.stop();
  }

  opened() {
    const reconnected = this.attempt > 0;
    this.attempt = 0;
    this.emit("status", { state: "online", reconnected });
  }

  closed(code, reason) {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retry(code, reason, delay);
  }
}

/** One call's signaling; ``ready`` resolves when the socket is open. */
export class SignalingSocket extends JsonSocket {
  static MAX_ATTEMPTS = 6;

  constructor(api, callId) {
    super(`/v1/calls/ws/signaling?call_id=${encodeURIComponent(callId)}`, api);
    this.attempt = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  opened() {
    const reconnected = this.attempt > 0;
    this.attempt = 0;
    this.emit("status", { state: "online", reconnected });
  }

  closed(code, reason) {
    if (code === 1000 || FINAL_CODES.has(code) || this.attempt >= SignalingSocket.MAX_ATTEMPTS) {
      this.stopped = true;
      this.emit("ended", { code, reason });
      return;
    }
    // The server holds this participant's messages for CALL_RECONNECT_GRACE (20 s): come back
    // within it, quickly at first, and the call resumes where it was.
    const delay = this.attempt === 0 ? 300 : backoffDelay(this.attempt, 6);
    this.attempt += 1;
    this.retry(code, reason, delay);
  }
}
