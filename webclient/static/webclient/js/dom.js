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

/** Runs a form's submit: its button is disabled meanwhile, a failure's message is shown in the
 * form's .form-error (a validation error's messages each beside the field they are about), and
 * the form is reset on success. Resolves to true when it succeeded. */
export async function submitForm(event, action) {
  event.preventDefault();
  const form = event.target;
  const error = form.querySelector(".form-error");
  const button = form.querySelector("button[type=submit]");
  error.textContent = "";
  clearFieldErrors(form);
  button.disabled = true;
  try {
    await action(form);
    form.reset();
    return true;
  } catch (err) {
    const placed = showFieldErrors(form, err.fieldErrors);
    error.textContent = placed ? placed.rest : err.message;
    if (placed?.first) placed.first.focus();
    return false;
  } finally {
    button.disabled = false;
  }
}

function clearFieldErrors(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}

/** Put each field's messages under its input. ``fieldErrors``: {field: "message"}. Returns the
 * first input marked and the messages no input of this form could take (joined), or null when
 * there is nothing to place. */
function showFieldErrors(form, fieldErrors) {
  if (!fieldErrors || !Object.keys(fieldErrors).length) return null;
  let first = null;
  const rest = [];
  for (const [field, message] of Object.entries(fieldErrors)) {
    const input = form.elements.namedItem(field);
    if (!(input instanceof HTMLElement) || !input.closest("label")) {
      rest.push(message);
      continue;
    }
    const id = `${form.id}-${field}-error`;
    input.closest("label").append(h("span", { class: "field-error", id }, message));
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    first ??= input;
  }
  return { first, rest: rest.join(" ") };
}

/** A message in the corner; ``kind``: info, success, warning, error. ``action``: {label, onClick}
 * adds a button that does it (and dismisses the message). */
export function toast(message, { kind = "info", timeout = 6000, action = null } = {}) {
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, message));
  const close = () => item.remove();
  if (action) {
    const run = () => {
      close();
      action.onClick();
    };
    item.append(h("button", { class: "toast-action", type: "button", onclick: run }, action.label));
  }
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
