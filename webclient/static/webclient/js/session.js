// Who is logged in in this tab, and the names of people this browser has seen.
//
// The session lives in sessionStorage, so two windows (or tabs) of one browser can be logged
// in as two different people, which is how the demo is meant to be tried. The directory of
// names lives in localStorage: the service has no user look-up by email or username, so the
// client remembers every user who logged in on this browser to show names instead of ids.

const SESSION_KEY = "secureconnect.session";
const DIRECTORY_KEY = "secureconnect.directory";

function readJson(storage, key, fallback) {
  try {
    const raw = storage.getItem(key);
    return raw ? JSON.parse(raw) : fallback;
  } catch {
    return fallback;
  }
}

export class Session {
  constructor() {
    const saved = readJson(sessionStorage, SESSION_KEY, null);
    this.accessToken = saved?.accessToken ?? null;
    this.refreshToken = saved?.refreshToken ?? null;
    this.user = saved?.user ?? null;
  }

  get loggedIn() {
    return Boolean(this.accessToken && this.user);
  }

  get userId() {
    return this.user?.user_id ?? null;
  }

  store({ accessToken, refreshToken, user }) {
    if (accessToken !== undefined) this.accessToken = accessToken;
    if (refreshToken !== undefined) this.refreshToken = refreshToken;
    if (user !== undefined) {
      this.user = user;
      rememberUser(user);
    }
    sessionStorage.setItem(
      SESSION_KEY,
      JSON.stringify({ accessToken: this.accessToken, refreshToken: this.refreshToken, user: this.user }),
    );
  }

  clear() {
    this.accessToken = this.refreshToken = this.user = null;
    sessionStorage.removeItem(SESSION_KEY);
  }
}

export function directory() {
  return readJson(localStorage, DIRECTORY_KEY, {});
}

export function rememberUser(user) {
  if (!user?.user_id) return;
  const entries = directory();
  entries[user.user_id] = {
    user_id: user.user_id,
    email: user.email,
    username: user.username,
    display_name: user.display_name,
  };
  localStorage.setItem(DIRECTORY_KEY, JSON.stringify(entries));
}

/** A readable name for a user id: display name, username, or a short id. */
export function nameOf(userId) {
  const known = directory()[userId];
  if (known) return known.display_name || known.username || known.email;
  return userId ? `User ${String(userId).slice(0, 8)}` : "Someone";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A user id for what someone typed: a user id, or the email or username of someone seen here. */
export function resolveUser(text) {
  const wanted = text.trim();
  if (UUID.test(wanted)) return wanted.toLowerCase();
  const lower = wanted.toLowerCase();
  const match = Object.values(directory()).find(
    (u) => u.email?.toLowerCase() === lower || u.username?.toLowerCase() === lower,
  );
  return match ? match.user_id : null;
}
