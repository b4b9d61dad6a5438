// Small DOM helpers: build elements without innerHTML (names and messages come from users and
// the network), toasts, the top banner, and date formatting.

export const $ = (selector, root = document) => root.querySelector(selector);

/** h("button", {class: "x", onclick: fn, dataset: {id: 1}}, "text", child, ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function show(el, visible = true) {
  el.hidden = !visible;
}

/** A message in the corner; ``kind``: info, success, error. */
/** Runs a form's submit: its button is disabled meanwhile, a failure's message is shown in the
 * form's .form-error, and the form is reset on success. Resolves to true when it succeeded. */
export async function submitForm(event, action) {
  event.preventDefault();
  const form = event.target;
  const error = form.querySelector(".form-error");
  const button = form.querySelector("button[type=submit]");
  error.textContent = "";
  button.disabled = true;
  try {
    await action(form);
    form.reset();
    return true;
  } catch (err) {
    error.textContent = err.message;
    return false;
  } finally {
    button.disabled = false;
  }
}

export function toast(message, { kind = "info", timeout = 6000 } = {}) {
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  const close = () => item.remove();
  item.append(h("button", { class: "toast-close", type: "button", "aria-label": "Dismiss", onclick: close }, "×"));
  $("#toasts").append(item);
  if (timeout) setTimeout(close, timeout);
  return item;
}

export function showBanner(message, kind = "warning") {
  const banner = $("#banner");
  banner.textContent = message;
  banner.dataset.kind = kind;
  banner.hidden = false;
}

export function hideBanner() {
  $("#banner").hidden = true;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

export function formatWhen(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  const today = new Date();
  return when.toDateString() === today.toDateString() ? `Today ${timeFormat.format(when)}` : dateFormat.format(when);
}

export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/);
  return (words[0][0] + (words.length > 1 ? words[words.length - 1][0] : "")).toUpperCase();
}
