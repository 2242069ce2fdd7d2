// Small DOM helpers shared by the console's pages.
//
// Text from the relay or from a statement is only ever set as textContent (never as HTML),
// so nothing a requester or the relay writes can become markup or script on this page.

import * as api from "./api.js";

/** An element with attributes and children; strings become text nodes, never HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A definition list of [label, value] rows; values may be nodes or text. */
export function facts(rows) {
  return el(
    "dl",
    { class: "facts" },
    rows.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value ?? "-")]),
  );
}

export function status(message, { error = false } = {}) {
  const node = document.getElementById("status");
  if (!node) return;
  node.textContent = message;
  node.classList.toggle("error", error);
}

/** An error in words: the relay's message and hint, or the passkey's, or the check that failed. */
export function describe(error) {
  if (error instanceof api.RelayError) {
    return [error.message, error.hint].filter(Boolean).join(" ");
  }
  if (error?.code && error?.message) return `${error.message} (${error.code})`;
  return error?.message || String(error);
}

export function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

/** Wire the header's sign-out button and the footer; send a signed-out visitor to sign in. */
export async function shell({ requireSession = true } = {}) {
  if ("serviceWorker" in navigator) {
    // Installable as an app (PWA); the worker caches nothing (see sw.js).
    navigator.serviceWorker.register("/console/sw.js", { scope: "/console/" }).catch(() => {});
  }
  const signout = document.getElementById("signout");
  if (signout) {
    signout.addEventListener("click", async () => {
      try {
        await api.post("/console/signout");
      } finally {
        location.assign("/console/signin");
      }
    });
  }
  const who = document.getElementById("who");
  const approver = document.querySelector('meta[name="sealbox-approver"]')?.content;
  if (who && approver) who.textContent = `Signed in as approver ${approver} · vault ${api.vault}`;
  if (requireSession && !api.signedIn()) {
    location.assign(`/console/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
    return false;
  }
  return true;
}

/** Run an async action from a button: disabled while it runs, errors shown in the status line. */
export function action(button, work) {
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      status(describe(error), { error: true });
    } finally {
      button.disabled = false;
    }
  });
}
