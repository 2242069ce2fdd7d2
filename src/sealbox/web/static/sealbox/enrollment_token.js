// The enrollment token a CI provider's secret store holds for `sealbox ci login`
// (docs/protocol.md 7.2): a port of src/sealbox/protocol/enrollment_token.py, writing side.
//
//   sbx_enr_ || b64u(canonical JSON {v: 1, server, vault, fingerprint, enrollment, key})
//
// `key` is the delegation private key in its text form (sbx-ed25519-sk-v1: + b64u(seed)).
// The relay never sees it; the page shows the token once and keeps nothing.

import { b64uEncode, canonicalBytes } from "./encoding.js";
import { keySignPrivate } from "./labels.js";

export const PREFIX = "sbx_enr_";
const SERVER = /^https?:\/\/[A-Za-z0-9.\-[\]:]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$/;
// An Ed25519 PKCS#8 key (RFC 8410) is a fixed 16-byte header and the 32-byte seed.
const PKCS8_ED25519_HEADER = "302e020100300506032b657004220420";

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The text form of an extractable Ed25519 SigningKey (keys.js).
export async function signingKeyText(signingKey) {
  const pkcs8 = await signingKey.exportPkcs8();
  if (pkcs8.length !== 48 || hex(pkcs8.slice(0, 16)) !== PKCS8_ED25519_HEADER) {
    throw new TypeError("not an Ed25519 PKCS#8 key");
  }
  return keySignPrivate + b64uEncode(pkcs8.slice(16));
}

export async function enrollmentToken({ server, vault, fingerprint, enrollment, signingKey }) {
  const base = String(server).replace(/\/+$/, "");
  if (!SERVER.test(base) || base.length > 2048) {
    throw new TypeError("the relay URL is not a plain http(s) URL");
  }
  const body = { v: 1, server: base, vault, fingerprint, enrollment, key: await signingKeyText(signingKey) };
  return PREFIX + b64uEncode(canonicalBytes(body));
}
