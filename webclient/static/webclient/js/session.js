// Who is logged in in this tab.
//
// The session lives in sessionStorage, so two windows (or tabs) of one browser can be logged
// in as two different people, which is how the demo is meant to be tried. Other people's names
// are people.js's business.

const SESSION_KEY = "secureconnect.session";

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
    if (user !== undefined) this.user = user;
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
