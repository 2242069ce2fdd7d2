// Per-action consent (docs/protocol.md section 9a), approver side.  A port of the approver
// half of src/sealbox/protocol/consent.py.
//
// verifyConsentRequest checks the client's certificate against the directory and the consent
// request its key signed; answerConsent signs a sealbox.consent.v1 for exactly that request:
// its action, the hash of its details, its client, a scope naming the request, and at most
// the validity it asked for.  A refusal is a deny of the request's hash (access.js).

import { SealboxError } from "./errors.js";
import { canonicalBytes, digest } from "./encoding.js";
import { hashConsentDetails } from "./labels.js";
import { peekHeader, statementHash } from "./jws.js";
import { directoryApprover } from "./directory.js";
import { CLOCK_SKEW, verifyChain } from "./certificates.js";
import {
  MAX_CONSENT_TTL,
  freeze,
  readConsent,
  readConsentRequest,
  signTyped,
  verifyTyped,
} from "./statements.js";

// Longest a consent request may wait for an answer (seconds).
export const MAX_CONSENT_WAIT = 3600;

const error = (code, message) => new SealboxError(code, message);

// The labelled hash of an action's parameters (canonical JSON of `details`).
export async function consentDetailsHash(details) {
  let bytes;
  try {
    bytes = canonicalBytes(details);
  } catch {
    throw error("malformed", "consent details: not representable as canonical JSON");
  }
  return digest(hashConsentDetails, bytes);
}

// The scope of a consent given in answer to the consent request `requestHash`.
export function consentScope(requestHash) {
  return `consent-request ${requestHash}`;
}

// Verify a consent request and the certificate of the client that signed it; return
// {statement, hash, certificate}, every field of which is safe to show as verified.
export async function verifyConsentRequest(token, { directory, certificate, now, enrollment = null }) {
  const { cert } = await verifyChain(certificate, directory, { now, enrollment });
  const header = peekHeader(token);
  if (header.kid !== cert.client.id) {
    throw error("not_authorized", "consent request is not signed by the certified client");
  }
  const statement = await verifyTyped(token, readConsentRequest, cert.client.sig_pk, cert.client.id);
  if (statement.client !== cert.client.id || statement.vault !== directory.vault) {
    throw error("binding_mismatch", "consent request client or vault does not match its certificate");
  }
  if (statement.exp - statement.at > MAX_CONSENT_WAIT || statement.exp <= statement.at) {
    throw error("malformed", "consent request: validity window out of range");
  }
  if (statement.at > now + CLOCK_SKEW || now > statement.exp) {
    throw error("expired", "consent request is not valid at this time");
  }
  return freeze({ statement, hash: await statementHash(token), certificate: cert });
}

// Sign a consent to a verified request (issue_consent in Python): for its action, details and
// client, for min(ttl, the request's ttl) seconds.
export async function answerConsent(verified, { directory, approverId, signingKey, now, ttl = null }) {
  const s = verified.statement;
  if (now > s.exp) throw error("expired", "consent request expired before it was answered");
  const record = directoryApprover(directory, approverId);
  if (record.sig_pk.text !== signingKey.publicKey().text) {
    throw new TypeError("the signing key is not this approver's directory key");
  }
  const lasts = Math.min(ttl ?? s.ttl, s.ttl);
  if (!(lasts > 0 && lasts <= MAX_CONSENT_TTL)) throw new TypeError("ttl out of range");
  const payload = {
    vault: directory.vault,
    approver: approverId,
    action: s.action,
    details: await consentDetailsHash(s.details),
    client: s.client,
    scope: consentScope(verified.hash),
    at: now,
    exp: now + lasts,
  };
  return signTyped(readConsent, payload, signingKey, approverId);
}
