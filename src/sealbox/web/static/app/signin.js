// The sign-in page: a passkey assertion the relay verifies starts a console session.
//
// The session lets the relay know which approver is looking; it never lets anyone release,
// store or admit anything (those are statements signed with keys only the passkey unwraps).

import * as api from "./api.js";
import { labels, loadApprover, saveApprover } from "./custody.js";
import { signInAssertion } from "./passkey.js";
import { action, describe, status } from "./ui.js";

function next() {
  const wanted = new URLSearchParams(location.search).get("next") || "/console/approvals";
  // Only a page of this console, as the browser resolves it (so "..", "//" and encoded
  // tricks are judged after resolving): never another site, never the API.
  let url;
  try {
    url = new URL(wanted, location.origin);
  } catch {
    return "/console/approvals";
  }
  const page = /^\/console\/[a-z]+$/.test(url.pathname);
  return url.origin === location.origin && page ? url.pathname + url.search : "/console/approvals";
}

action(document.getElementById("signin-button"), async () => {
  if (!(await loadApprover(api.vault))) {
    status(
      "This browser holds no approver keys for this vault: signing in here would let you look, " +
        "not answer. Use the browser where the approver was set up, or restore its export below.",
      { error: true },
    );
  }
  const options = await api.post("/console/signin/options", {});
  status("Use your passkey…");
  const made = await signInAssertion(options.publicKey);
  const done = await api.post("/console/signin", { credential: made.credential });
  api.useCsrf(done.csrf);
  status("Signed in.");
  location.assign(next());
});

// The synced tier: an export made on another browser holds the keys still wrapped under the
// passkey, which a synced passkey brings here; nothing in it opens without that passkey.
document.getElementById("restore-file").addEventListener("change", async (event) => {
  try {
    const file = event.target.files?.[0];
    if (!file) return;
    const entry = JSON.parse(await file.text());
    if (entry?.format !== labels.keyRecord || entry.vault !== api.vault) {
      throw new Error("This file is not an approver export of this vault.");
    }
    if (entry.record?.tier !== "synced") {
      throw new Error("Only a synced-tier approver can be restored elsewhere.");
    }
    const existing = await loadApprover(api.vault);
    if (existing && !window.confirm(`Replace this browser's approver ${existing.approverId} with ${entry.approverId}?`)) {
      status("Nothing was restored.");
      return;
    }
    await saveApprover({ ...entry, head: null });
    status("Restored. Sign in with the passkey to use it.");
  } catch (error) {
    status(describe(error), { error: true });
  }
});
