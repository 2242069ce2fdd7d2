// Signed statements: JWS compact serialisation (RFC 7515), alg EdDSA (RFC 8037).
// Mirrors src/sealbox/crypto/jws.py (protocol §4.4).
//
// Written on the Ed25519 primitive rather than through a JOSE library because
// sealbox needs less than a library accepts: exactly one algorithm, exactly one
// header ({"alg":"EdDSA","kid":…,"typ":…}, canonical JSON), no crit, no JWK
// embedding, no unencoded payloads.  Anything else is rejected before the
// signature is even looked at, which closes algorithm confusion and header
// injection outright.
//
// Verification checks the exact received bytes, then parses: the payload must be
// canonical JSON (encoding.js), so no two byte strings carry the same statement.

import { codes, SealboxError } from "./errors.js";
import {
  b64uDecode,
  b64uEncode,
  canonicalBytes,
  digest,
  parseCanonical,
  utf8,
} from "./encoding.js";
import { parseVerifyKey, SIGNATURE_BYTES, SigningKey, VerifyKey } from "./keys.js";
import { allStatementTypes, hashStatement } from "./labels.js";

/**
 * Upper bound on a compact JWS sealbox will look at.  Statements are small; the
 * bound keeps a hostile peer from making us parse megabytes.
 */
export const MAX_JWS_CHARS = 1 << 20;
export const ALG = "EdDSA";
// A signer is named by a sealbox id: three-letter kind, "_", 26 base32 characters.
const KID = /^[a-z]{3}_[a-z2-7]{26}$/;
const ASCII = /^[\x00-\x7f]*$/;

function malformed(message) {
  return new SealboxError(codes.malformed, message);
}

function split(token) {
  if (typeof token !== "string") {
    throw malformed("statement: expected a compact JWS string");
  }
  if (token.length > MAX_JWS_CHARS) {
    throw malformed("statement: too large");
  }
  const parts = token.split(".");
  if (parts.length !== 3) {
    throw malformed("statement: expected three dot-separated parts");
  }
  return parts;
}

/**
 * The protected header of a token that has NOT been verified yet: `{typ, kid}`.
 *
 * Only for choosing which key to verify with (by kid) and which reader to use
 * (by typ); never act on anything else before `verifyStatement`.  Strict: a
 * header that is not exactly the canonical {"alg":"EdDSA","kid":…,"typ":…} with a
 * known typ and an identifier-shaped kid is `malformed`.
 */
export function peekHeader(token) {
  const [headerB64] = split(token);
  const header = parseCanonical(b64uDecode(headerB64, { what: "JWS header" }), {
    what: "JWS header",
  });
  const names = Object.keys(header).sort();
  if (names.length !== 3 || names[0] !== "alg" || names[1] !== "kid" || names[2] !== "typ") {
    // No crit, jwk, x5u, b64 or any other parameter: each of them changes how a
    // verifier should treat the token, and sealbox wants none of that.
    throw malformed("JWS header: must have exactly alg, kid and typ");
  }
  if (header.alg !== ALG) {
    throw malformed("JWS header: alg must be EdDSA");
  }
  const { typ, kid } = header;
  if (typeof typ !== "string" || !allStatementTypes.includes(typ)) {
    throw malformed("JWS header: unknown statement type");
  }
  if (typeof kid !== "string" || !KID.test(kid)) {
    // The kid is read before any signature check and ends up in error messages
    // and logs: only the short, plain form of a sealbox id passes.
    throw malformed("JWS header: kid must be a sealbox identifier");
  }
  return Object.freeze({ typ, kid });
}

/** Sign `payload` (a plain object) as a statement of type `typ` by the key named `kid`. */
export async function signStatement(typ, kid, payload, signingKey) {
  if (!allStatementTypes.includes(typ)) {
    throw new RangeError(`unknown statement type ${JSON.stringify(typ)}`);
  }
  if (!(signingKey instanceof SigningKey)) {
    throw new TypeError("signStatement needs a SigningKey");
  }
  const header = b64uEncode(canonicalBytes({ alg: ALG, kid, typ }));
  const signingInput = `${header}.${b64uEncode(canonicalBytes(payload))}`;
  const signature = await signingKey.sign(utf8(signingInput));
  return `${signingInput}.${b64uEncode(signature)}`;
}

/**
 * Verify `token` as a `typ` statement signed by `key` under `kid`; return its payload.
 *
 * Checks in the order of protocol §4.4: three parts; the header canonical and
 * exactly as above with a known typ (else `malformed`); typ is the expected type
 * and kid the expected signer (else `signature_invalid`); the 64-byte signature
 * over the exact received `header.payload` characters (`signature_invalid`);
 * then the payload parsed as canonical JSON (`malformed`).  Never returns a
 * boolean.  `key` is a VerifyKey or its text form.
 */
export async function verifyStatement(token, { typ, kid, key }) {
  const verifyKey = typeof key === "string" ? parseVerifyKey(key) : key;
  if (!(verifyKey instanceof VerifyKey)) {
    throw new TypeError("verifyStatement needs a VerifyKey");
  }
  const header = peekHeader(token);
  const [headerB64, payloadB64, signatureB64] = split(token);
  if (header.typ !== typ) {
    // A valid signature on another statement type must not be accepted here: the
    // same key signs several kinds of statement.
    throw new SealboxError(
      codes.signature_invalid,
      `statement type is ${header.typ}, expected ${typ}`,
    );
  }
  if (header.kid !== kid) {
    throw new SealboxError(
      codes.signature_invalid,
      "statement kid does not name the expected signer",
    );
  }
  const signature = b64uDecode(signatureB64, { length: SIGNATURE_BYTES, what: "JWS signature" });
  // Decoded before the signature check so that the signing input is known to be
  // base64url (hence ASCII); parsed only after it verifies.
  const payload = b64uDecode(payloadB64, { what: "JWS payload" });
  await verifyKey.verify(signature, utf8(`${headerB64}.${payloadB64}`));
  return parseCanonical(payload, { what: "JWS payload" });
}

/** The hash that names a statement: over the exact compact JWS characters. */
export async function statementHash(token) {
  split(token);
  if (!ASCII.test(token)) {
    throw malformed("statement: not ASCII");
  }
  return digest(hashStatement, utf8(token));
}
