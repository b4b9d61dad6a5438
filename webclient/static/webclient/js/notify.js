// A system notification for a call that rings while this tab is in the background (the
// Notification API). Permission is asked only when the person does something about calls (starts
// or answers one, or presses "Call alerts"), never on load: browsers ignore or penalise a prompt
// nobody asked for.

export class CallNotifier {
  constructor() {
    this.shown = new Map(); // call id -> the Notification on screen
  }

  get supported() {
    return typeof window.Notification === "function";
  }

  /** "default" (not asked yet), "granted", "denied", or "unsupported". */
  get permission() {
    return this.supported ? Notification.permission : "unsupported";
  }

  /** Ask for permission if it was never asked; call it from a click. Resolves the permission. */
  async ask() {
    if (this.permission !== "default") return this.permission;
    try {
      return await Notification.requestPermission();
    } catch {
      return this.permission;
    }
  }

  /** Show the call's notification, once, if this tab is hidden and notifications are allowed.
   * ``onClick`` runs when the person clicks it (the tab is brought forward first). */
  ring(callId, { title, body, onClick }) {
    if (this.shown.has(callId) || this.permission !== "granted" || document.visibilityState === "visible") return;
    let notification;
    try {
      notification = new Notification(title, { body, tag: `call-${callId}`, requireInteraction: true });
    } catch {
      return; // some browsers allow notifications only from a service worker: the ring is enough
    }
    notification.addEventListener("click", () => {
      window.focus();
      notification.close();
      onClick?.();
    });
    this.shown.set(callId, notification);
  }

  /** Take down the call's notification (it was answered, declined or stopped ringing). */
  stop(callId) {
    this.shown.get(callId)?.close();
    this.shown.delete(callId);
  }

  /** Take down every notification but those of ``keep`` (call ids still ringing). */
  stopAllBut(keep) {
    for (const callId of [...this.shown.keys()]) if (!keep.has(callId)) this.stop(callId);
  }
}
