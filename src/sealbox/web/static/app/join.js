// The join page: this browser becomes another approver of an existing vault, by pairing.
//
// The browser pins the vault's link 0 as it is first served (trust on first use: the person
// compares the vault safety code with an existing approver's), makes its keys and a passkey,
// wraps the keys, and asks to join with its directory record. An existing approver adds it
// only after typing the pairing code shown here, which covers the approver id and both
// public keys: a relay that swapped a key shows the other side a code that does not match.
// Once added, this browser accepts only a directory that verifies from the pinned link 0 and
// holds its record exactly as it sent it.

import {
  pairingCode,
  requireRecord,
  vaultFingerprint,
  vaultSafetyCode,
  verifyDirectory,
} from "../sealbox/directory.js";
import * as api from "./api.js";
import { keep, newApprover } from "./approver.js";
import { forgetApprover, loadApprover, saveApprover } from "./custody.js";
import { createPasskey, signInAssertion } from "./passkey.js";
import { describe, status } from "./ui.js";

const form = document.getElementById("join-form");
let pinned = null;

async function pin() {
  const served = await api.get("/directory");
  const link0 = served.links[0];
  const fingerprint = await vaultFingerprint(link0);
  // Verified now from this link 0; every later check is against the same fingerprint.
  await verifyDirectory(served.links, { pinned: fingerprint });
  document.getElementById("safety-code").textContent = await vaultSafetyCode(link0);
  pinned = fingerprint;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForAnswer(pairing, record) {
  for (;;) {
    const found = await api.get(`/pairing-requests/${encodeURIComponent(pairing.id)}`);
    if (found.state === "approved") break;
    if (found.state !== "pending") {
      await forgetApprover(api.vault);
      throw new Error(`The pairing was ${found.state}: this browser was not added.`);
    }
    await sleep(2000);
  }
  const served = await api.get("/directory");
  const directory = await verifyDirectory(served.links, { pinned });
  requireRecord(directory, record);
  const entry = await loadApprover(api.vault);
  await saveApprover({ ...entry, head: { seq: directory.head.seq, hash: directory.head.hash } });
}

async function join() {
  if (await loadApprover(api.vault)) {
    throw new Error("This browser already holds an approver of this vault: sign in instead.");
  }
  const name = document.getElementById("approver-name").value.trim();
  const tier = form.querySelector('input[name="tier"]:checked')?.value ?? "device";
  const fresh = await newApprover(name, tier);
  const options = await api.post("/console/pairing/options", { approver_id: fresh.approverId, name });
  status("Create the passkey on your authenticator…");
  const made = await createPasskey(options.publicKey);
  await keep(fresh, made, pinned);
  const record = fresh.record;
  let pairing;
  try {
    pairing = await api.post("/console/pairing", { approver: record, credential: made.credential });
  } catch (error) {
    if (error instanceof api.RelayError && error.status >= 400 && error.status < 500) {
      await forgetApprover(api.vault);
    }
    throw error;
  }
  form.hidden = true;
  document.getElementById("pairing-code").textContent = await pairingCode(record);
  document.getElementById("waiting").hidden = false;
  status("Waiting for an approver to add this browser…");
  await waitForAnswer(pairing, record);
  status("Added. Sign in with the passkey…");
  const signin = await api.post("/console/signin/options", {});
  const assertion = await signInAssertion(signin.publicKey);
  const done = await api.post("/console/signin", { credential: assertion.credential });
  api.useCsrf(done.csrf);
  status("This browser is now an approver of the vault.");
  location.assign("/console/approvals");
}

pin().catch((error) => status(describe(error), { error: true }));
// Enabled only now: pressed before this script ran, the form would have gone to the server.
document.getElementById("join-button").disabled = false;
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("join-button");
  button.disabled = true;
  try {
    if (pinned === null) await pin();
    await join();
  } catch (error) {
    status(describe(error), { error: true });
    button.disabled = false;
  }
});
