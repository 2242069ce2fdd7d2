// WebAuthn ceremonies: make the approver's passkey, sign in with it, and take its PRF output.
//
// One passkey serves two purposes. The relay verifies its assertions to start a console
// session (who is at the keyboard). Its PRF output, which never leaves this page, derives the
// key that wraps this approver's private keys (what can release anything): see keystore.js.
// The PRF value is stripped from everything sent to the relay.

import { b64uDecode, b64uEncode, utf8 } from "../sealbox/encoding.js";
import { labels } from "./custody.js";

/** The PRF input every sealbox browser approver evaluates: a fixed, labelled salt. */
export async function prfSalt() {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", utf8(labels.prfSalt)));
}

/** How long a ceremony may wait for the person (or for an authenticator that is absent). */
const CEREMONY_MS = 60_000;

function fromB64u(value) {
  return b64uDecode(value, { what: "WebAuthn option" });
}

/** Creation options from the relay's JSON (py_webauthn's options_to_json) to WebAuthn's form. */
function creationOptions(json, salt) {
  return {
    ...json,
    challenge: fromB64u(json.challenge),
    user: { ...json.user, id: fromB64u(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: fromB64u(c.id) })),
    timeout: CEREMONY_MS,
    extensions: { ...(json.extensions || {}), prf: { eval: { first: salt } } },
  };
}

function requestOptions(json, salt) {
  return {
    ...json,
    challenge: fromB64u(json.challenge),
    allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: fromB64u(c.id) })),
    userVerification: "required",
    timeout: CEREMONY_MS,
    extensions: salt ? { prf: { eval: { first: salt } } } : {},
  };
}

function prfOutput(credential) {
  const first = credential.getClientExtensionResults()?.prf?.results?.first;
  return first ? new Uint8Array(first) : null;
}

/** The credential as the relay reads it, without any extension output (PRF stays here). */
function credentialJson(credential) {
  const r = credential.response;
  const response = { clientDataJSON: b64uEncode(new Uint8Array(r.clientDataJSON)) };
  if (r.attestationObject) {
    response.attestationObject = b64uEncode(new Uint8Array(r.attestationObject));
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = b64uEncode(new Uint8Array(r.authenticatorData));
    response.signature = b64uEncode(new Uint8Array(r.signature));
    if (r.userHandle) response.userHandle = b64uEncode(new Uint8Array(r.userHandle));
  }
  return {
    id: credential.id,
    rawId: b64uEncode(new Uint8Array(credential.rawId)),
    type: credential.type,
    response,
    authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
    clientExtensionResults: {},
  };
}

/** A missing or refusing authenticator, in words a person can act on. */
export class PasskeyError extends Error {
  constructor(message) {
    super(message);
    this.code = "passkey_failed";
  }
}

function explain(error) {
  if (error?.name === "NotAllowedError") {
    return new PasskeyError(
      "The passkey was not used: it was cancelled, timed out, is not on this device, or could " +
        "not verify you. Nothing was signed.",
    );
  }
  if (error?.name === "InvalidStateError") {
    return new PasskeyError("This authenticator already holds a passkey for this approver.");
  }
  return new PasskeyError(`The passkey could not be used (${error?.name || "error"}).`);
}

/**
 * Make the approver's passkey from the relay's creation options.
 * Returns {credential (JSON for the relay), credentialId, prf (32 bytes, stays here)}.
 */
export async function createPasskey(optionsJson) {
  const salt = await prfSalt();
  let credential;
  try {
    credential = await navigator.credentials.create({ publicKey: creationOptions(optionsJson, salt) });
  } catch (error) {
    throw explain(error);
  }
  let prf = prfOutput(credential);
  if (!prf) {
    // Some authenticators give PRF output only on assertions: take one now.
    prf = await unlockPrf(b64uEncode(new Uint8Array(credential.rawId)));
  }
  return { credential: credentialJson(credential), credentialId: credential.id, prf };
}

/** An assertion for the relay's sign-in challenge; returns {credential, credentialId}. */
export async function signInAssertion(optionsJson) {
  let credential;
  try {
    credential = await navigator.credentials.get({ publicKey: requestOptions(optionsJson, null) });
  } catch (error) {
    throw explain(error);
  }
  return { credential: credentialJson(credential), credentialId: credential.id };
}

/**
 * The PRF output of this approver's passkey, with user verification: the only way to the key
 * that unwraps the private keys. The challenge is random and checked by no one: what this
 * ceremony proves is in its PRF output (the authenticator computes it only with the
 * credential present and, for "required", the person verified).
 */
export async function unlockPrf(credentialId) {
  const salt = await prfSalt();
  const challenge = crypto.getRandomValues(new Uint8Array(32));
  let assertion;
  try {
    assertion = await navigator.credentials.get({
      publicKey: requestOptions(
        {
          challenge: b64uEncode(challenge),
          allowCredentials: [{ type: "public-key", id: credentialId }],
        },
        salt,
      ),
    });
  } catch (error) {
    throw explain(error);
  }
  const prf = prfOutput(assertion);
  if (!prf) {
    throw new PasskeyError(
      "This authenticator does not support the PRF extension, which sealbox needs to keep " +
        "the approver's keys wrapped.",
    );
  }
  return prf;
}
