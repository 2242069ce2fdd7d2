// The setup page: this browser becomes the vault's first approver.
//
// Keys are made here; the passkey is made for the approver id that link 0 adds; the private
// keys are wrapped under the passkey's PRF output before anything is sent; link 0 is signed
// here. The relay gets link 0, the passkey's public credential and the setup token, which it
// accepts once.

import { genesisLink, vaultSafetyCode, vaultFingerprint } from "../sealbox/directory.js";
import * as api from "./api.js";
import { keep, newApprover, now } from "./approver.js";
import { forgetApprover } from "./custody.js";
import { createPasskey } from "./passkey.js";
import { describe, status } from "./ui.js";

const form = document.getElementById("setup-form");
const tokenInput = document.getElementById("setup-token");

// `sealbox up` prints /console/setup#setup_token=…: a fragment never reaches the server or its
// logs. Take it, then drop it from the address bar and the history.
const fromLink = new URLSearchParams(location.hash.slice(1)).get("setup_token");
if (fromLink) {
  tokenInput.value = fromLink;
  history.replaceState(null, "", location.pathname);
}

async function setUp() {
  const setupToken = tokenInput.value.trim();
  const name = document.getElementById("approver-name").value.trim();
  const tier = form.querySelector('input[name="tier"]:checked')?.value ?? "device";
  status("Making this approver's keys…");
  const fresh = await newApprover(name, tier);
  const options = await api.post("/console/setup/options", {
    setup_token: setupToken,
    approver_id: fresh.approverId,
    name,
  });
  status("Create the passkey on your authenticator…");
  const made = await createPasskey(options.publicKey);
  const link0 = await genesisLink(api.vault, fresh.record, fresh.sig, { now: now() });
  await keep(fresh, made, await vaultFingerprint(link0));
  let done;
  try {
    done = await api.post("/console/setup", { setup_token: setupToken, link: link0, credential: made.credential });
  } catch (error) {
    if (error instanceof api.RelayError && error.status >= 400 && error.status < 500) {
      // Refused: the relay stored nothing, so these keys will never be an approver.
      await forgetApprover(api.vault);
    }
    throw error;
  }
  api.useCsrf(done.csrf);
  document.getElementById("safety-code").textContent = await vaultSafetyCode(link0);
  form.hidden = true;
  document.getElementById("setup-done").hidden = false;
  status("This browser is now the vault's first approver.");
}

// Enabled only now: pressed before this script ran, the form would have gone to the server.
document.getElementById("setup-button").disabled = false;
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("setup-button");
  button.disabled = true;
  try {
    await setUp();
  } catch (error) {
    status(describe(error), { error: true });
  } finally {
    button.disabled = false;
  }
});
