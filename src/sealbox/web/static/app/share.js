// The page of a share link (/s/ID#KEY): reveal a secret someone shared, once.
//
// Loading the page spends nothing: it only asks whether the share needs a passphrase
// (a GET). The secret is fetched by the Reveal button (a POST that spends the share), so
// a link preview that fetches the page, or even runs it, does not burn the share. The key
// is read from the fragment, which the browser never sends, and never leaves this page.
// Calls omit cookies: a share is opened by whoever holds the link, not by a session.

import { fromUtf8, b64uEncode } from "../sealbox/encoding.js";
import { openShare, openToken, parseShareLocation, shareIdOf } from "../sealbox/share.js";

const byId = (id) => document.getElementById(id);
const statusLine = byId("status");
const reveal = byId("reveal");

function say(message, { error = false } = {}) {
  statusLine.textContent = message;
  statusLine.classList.toggle("error", error);
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? { accept: "application/json" }
      : { accept: "application/json", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  });
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const error = new Error(parsed?.message || `the server answered ${response.status}`);
    error.code = parsed?.error || `http_${response.status}`;
    error.hint = parsed?.hint || "";
    throw error;
  }
  return parsed;
}

function fail(error) {
  const hint = error.hint ? ` ${error.hint}` : "";
  say(`${error.message}.${hint}`, { error: true });
}

function show(bytes) {
  let text;
  try {
    text = fromUtf8(bytes);
  } catch {
    text = b64uEncode(bytes);
    say("The secret is binary: shown in base64url.");
  }
  const value = byId("value");
  value.value = text;
  byId("shown").hidden = false;
  byId("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value.value);
      say("Copied.");
    } catch {
      value.select();
      say("Select the text and copy it.");
    }
  });
}

async function main() {
  let shareId;
  try {
    shareId = shareIdOf(location.pathname);
  } catch (error) {
    say(`${error.message}.`, { error: true });
    return;
  }
  // First whether the share is there at all (a spent link says so, with or without its key).
  const path = `/v1/shares/${shareId}`;
  let info;
  try {
    info = await call("GET", path);
  } catch (error) {
    fail(error);
    return;
  }
  let link;
  try {
    link = parseShareLocation(location.pathname, location.hash);
  } catch (error) {
    say(`${error.message}. Copy the whole link, including the part after '#'.`, { error: true });
    return;
  }
  byId("ask").hidden = !info.passphrase;
  reveal.disabled = false;
  say(`Available until ${new Date(info.expires_at * 1000).toLocaleString()}.`);
  reveal.addEventListener("click", async () => {
    reveal.disabled = true;
    // The token proves the key without revealing it: the id alone opens nothing.
    const body = { token: await openToken(link.key, link.shareId) };
    if (info.passphrase) {
      const passphrase = byId("passphrase").value;
      if (!passphrase) {
        say("Enter the passphrase first.", { error: true });
        reveal.disabled = false;
        return;
      }
      body.passphrase = passphrase;
    }
    try {
      const answer = await call("POST", `${path}/open`, body);
      show(await openShare(link.key, link.shareId, answer));
      byId("ask").hidden = true;
      reveal.hidden = true;
      // The link is spent: keep its key out of this tab's history from now on.
      history.replaceState(null, "", location.pathname);
      if (!statusLine.textContent.startsWith("The secret is binary")) say("Revealed.");
    } catch (error) {
      fail(error);
    }
  });
}

main();
