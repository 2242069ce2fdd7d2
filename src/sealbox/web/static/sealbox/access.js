// Access and release (docs/protocol.md section 9), approver side.  A port of the approver
// half of src/sealbox/protocol/access.py and of src/sealbox/approver/review.py.
//
// verifyAccess checks the certificate and the statement; release verifies each item
// manifest, checks this approver's wrapped shares against it, opens them for exactly the
// fields asked for and seals them to the statement's one-time key with info bound to the
// request hash.  deny signs a refusal; refuseUnverifiable signs the refusal of a request
// that does not verify (grounds "unverifiable"), so its client fails at once instead of
// waiting for the expiry.  reviewRequest turns an entry of /approvals into verified facts
// to show, the way the terminal approver does.

import { SealboxError } from "./errors.js";
import { b64uEncode, canonicalBytes } from "./encoding.js";
import * as hpke from "./hpke.js";
import { hpkeRelease, releasePlaintextFormat } from "./labels.js";
import { peekHeader, statementHash } from "./jws.js";
import { directoryApprover } from "./directory.js";
import {
  CLOCK_SKEW,
  checkContext,
  checkPaths,
  verifyChain,
  verifyEnrollment,
} from "./certificates.js";
import {
  DENY_UNVERIFIABLE,
  denyPayload,
  freeze,
  readAccessStatement,
  readDeny,
  readRelease,
  releasePayload,
  signTyped,
  verifyTyped,
} from "./statements.js";
import {
  blobsFromWire,
  bytesMap,
  manifestHash,
  parseShare,
  verifyManifest,
  verifyStore,
  wrapHash,
  wrapInfo,
} from "./store.js";

// Longest an access statement may stay valid (seconds).
export const MAX_ACCESS_TTL = 3600;
// Longest reason a deny carries from a person (the terminal approver cuts it alike).
export const MAX_REASON = 500;

const error = (code, message) => new SealboxError(code, message);

// HPKE info of a release: bound to the vault, the request hash and the approver.
export function releaseInfo({ vault, request, approver }) {
  return hpke.info(hpkeRelease, vault, request, approver);
}

function checkWindow(statement, now) {
  if (statement.exp - statement.at > MAX_ACCESS_TTL || statement.exp <= statement.at) {
    throw error("malformed", "access statement: validity window out of range");
  }
  if (statement.at > now + CLOCK_SKEW || now > statement.exp) {
    throw error("expired", "access request is not valid at this time");
  }
}

// Verify an access statement and the certificate of the client that signed it; return
// {statement, hash, certificate}, every field of which is safe to show as verified.
export async function verifyAccess(token, { directory, certificate, now, enrollment = null }) {
  const { cert, delegation } = await verifyChain(certificate, directory, { now, enrollment });
  const header = peekHeader(token);
  if (header.kid !== cert.client.id) {
    throw error("not_authorized", "access statement is not signed by the certified client");
  }
  const statement = await verifyTyped(
    token,
    readAccessStatement,
    cert.client.sig_pk,
    cert.client.id,
  );
  if (statement.client !== cert.client.id || statement.vault !== directory.vault) {
    throw error(
      "binding_mismatch",
      "access statement client or vault does not match its certificate",
    );
  }
  checkContext(cert, statement.context);
  checkPaths(cert, statement.items.map((i) => i.path), delegation);
  checkWindow(statement, now);
  return Object.freeze({ statement, hash: await statementHash(token), certificate: cert });
}

// The manifest served for one asked item verifies and is bound to what was asked: the
// item, the path (the relay resolves paths to ids: without this it could answer with
// another item that has the same fields), the version if one was named, every field.
export async function checkManifestFor(item, token, directory, vault) {
  const manifest = await verifyManifest(token, directory);
  if (manifest.item !== item.item || manifest.vault !== vault) {
    throw error("binding_mismatch", `manifest served for ${item.item} is of another item`);
  }
  if (manifest.path !== item.path) {
    throw error("binding_mismatch", `${item.item} is stored at another path than was asked for`);
  }
  if (item.version !== null && manifest.version !== item.version) {
    throw error(
      "binding_mismatch",
      `manifest of ${item.item} is version ${manifest.version}, not asked for`,
    );
  }
  const missing = item.fields.filter((f) => !Object.hasOwn(manifest.fields, f));
  if (missing.length) {
    throw error("manifest_mismatch", `${item.item} has no field(s) ${missing.sort().join(", ")}`);
  }
  return manifest;
}

// Open this approver's shares for exactly the fields asked for; seal and sign a release.
//
// `verified` is what verifyAccess returned; `manifests` maps item id -> manifest token and
// `wraps` item id -> field -> this approver's wrapped share (Uint8Array), as the relay
// served them.  `cacheUntil` is until when the client may cache the values (0: not at all;
// see releaseCacheUntil).  `random(32)` fixes the HPKE ephemeral key, for vectors only.
export async function release({
  verified,
  manifests,
  wraps,
  directory,
  approverId,
  hpkePrivate,
  signingKey,
  now,
  cacheUntil = 0,
  random = null,
}) {
  const s = verified.statement;
  if (now > s.exp) throw error("expired", "access request expired before release");
  if (directoryApprover(directory, approverId).sig_pk.text !== signingKey.publicKey().text) {
    throw new TypeError("the signing key is not this approver's directory key");
  }
  const shares = [];
  const hashes = [];
  try {
    for (const item of s.items) {
      const token = manifests?.[item.item];
      if (typeof token !== "string" || !Object.hasOwn(manifests, item.item)) {
        throw error("binding_mismatch", `no manifest supplied for ${item.item}`);
      }
      const manifest = await checkManifestFor(item, token, directory, s.vault);
      if (!manifest.keyset.approvers.includes(approverId)) {
        throw error("not_authorized", `${approverId} holds no share of ${item.item}`);
      }
      const expected = manifest.keyset.wraps[approverId];
      const mine = bytesMap(wraps?.[item.item], `wraps of ${item.item}`);
      for (const name of item.fields) {
        const blob = Object.hasOwn(mine, name) ? mine[name] : undefined;
        if (blob === undefined || (await wrapHash(blob)) !== expected[name]) {
          throw error(
            "manifest_mismatch",
            `wrapped share of ${item.item}/${name} is not the signed one`,
          );
        }
        const info = wrapInfo({
          vault: s.vault,
          item: item.item,
          version: manifest.version,
          field: name,
          approver: approverId,
        });
        const share = parseShare(await hpke.open(hpkePrivate, info, blob), {
          keyset: manifest.keyset,
          approver: approverId,
        });
        shares.push({ item: item.item, version: manifest.version, field: name, share });
      }
      hashes.push(await manifestHash(token));
    }
    const plaintext = canonicalBytes({
      format: releasePlaintextFormat,
      shares: shares.map((x) => ({
        item: x.item,
        version: x.version,
        field: x.field,
        share: b64uEncode(x.share),
      })),
    });
    const info = releaseInfo({ vault: s.vault, request: verified.hash, approver: approverId });
    const blob = await hpke.seal(s.epk, info, plaintext, random ? { ikmE: draw(random, 32) } : {});
    plaintext.fill(0);
    const payload = releasePayload({
      vault: s.vault,
      request: verified.hash,
      approver: approverId,
      manifests: [...new Set(hashes)].sort(),
      blob,
      cache_until: cacheUntil,
      at: now,
    });
    // signTyped reads the payload first: never sign what a verifier would refuse.
    return await signTyped(readRelease, payload, signingKey, approverId);
  } finally {
    for (const x of shares) x.share.fill(0);
  }
}

function draw(random, n) {
  const out = random(n);
  if (!(out instanceof Uint8Array) || out.length !== n) {
    throw new TypeError("random source returned the wrong length");
  }
  return out;
}

function checkDenySigner(directory, approverId, signingKey) {
  if (directory) {
    if (directoryApprover(directory, approverId).sig_pk.text !== signingKey.publicKey().text) {
      throw new TypeError("the signing key is not this approver's directory key");
    }
  } else if (signingKey === undefined) {
    throw new TypeError("deny needs a signing key");
  }
}

// Sign a refusal of the request named by `requestHash` ("sha256:" + the relay's id).
//
// `grounds` "unverifiable" marks the refusal of a request that did not verify (`reason`
// then names the failed check); null (the default) is a decision by a person or a rule.
// With `directory` the signer is checked to be a current approver holding `signingKey`
// (as the Python does); `vault` defaults to the directory's.
export async function deny({
  requestHash,
  approverId,
  signingKey,
  reason,
  now,
  grounds = null,
  directory = null,
  vault = directory?.vault,
}) {
  checkDenySigner(directory, approverId, signingKey);
  const payload = denyPayload({
    vault,
    request: requestHash,
    approver: approverId,
    reason,
    at: now,
    grounds,
  });
  return signTyped(readDeny, payload, signingKey, approverId);
}

// A person's deny of the request the relay listed as `requestId`; the reason is cut to
// what the terminal approver sends.
export async function denyRequest({ requestId, reason, directory, approverId, signingKey, now }) {
  return deny({
    requestHash: `sha256:${requestId}`,
    approverId,
    signingKey,
    reason: [...reason].slice(0, MAX_REASON).join(""),
    now,
    directory,
  });
}

// Refuse a request that does not verify: a deny with grounds "unverifiable" and the reason
// "the request does not verify: <code>" (protocol section 9).  `requestId` is the id the
// relay listed (nothing else about the request can be trusted); `code` the failed check's
// error code.  Only for errors isRefusable accepts.
export async function refuseUnverifiable({
  requestId,
  code,
  directory,
  approverId,
  signingKey,
  now,
}) {
  return deny({
    requestHash: `sha256:${requestId}`,
    approverId,
    signingKey,
    reason: `the request does not verify: ${code}`.slice(0, MAX_REASON),
    now,
    grounds: DENY_UNVERIFIABLE,
    directory,
  });
}

// The codes that make a failed review the request's own doing, to be answered with a
// signed refusal: every verification failure and malformed input, except `expired` (a
// matter of clocks, not evidence of tampering) and a directory that does not verify (there
// is no verified membership to sign under).  Mirrors approver/answer.py's _refusable.
const REFUSABLE = new Set([
  "malformed",
  "invalid_input",
  "verification_failed",
  "signature_invalid",
  "decryption_failed",
  "binding_mismatch",
  "certificate_invalid",
  "not_authorized",
  "manifest_mismatch",
  "threshold_not_met",
  "version_rollback",
  "refused_unverifiable",
]);

export function isRefusable(exc) {
  return exc instanceof SealboxError && REFUSABLE.has(exc.code);
}

// Verify that a current approver denied exactly this request.
export async function verifyDeny(token, { directory, requestHash }) {
  const header = peekHeader(token);
  const signer = directoryApprover(directory, header.kid);
  const statement = await verifyTyped(token, readDeny, signer.sig_pk, signer.id);
  if (statement.approver !== signer.id || statement.vault !== directory.vault) {
    throw error("binding_mismatch", "deny approver or vault does not match its signature");
  }
  if (statement.request !== requestHash)
    throw error("binding_mismatch", "deny refers to another request");
  return statement;
}

// --- reviewing what /approvals lists ----------------------------------------------------------

function entryText(entry, key) {
  const value = entry?.[key];
  if (typeof value !== "string")
    throw error("malformed", `the relay's request has no valid '${key}'`);
  return value;
}

function entryCount(entry, key, fallback) {
  const value = entry?.[key];
  if (value === null || value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw error("malformed", `the relay's request has no valid '${key}'`);
  }
  return value;
}

function entryMapping(entry, key) {
  const value = entry?.[key];
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw error("malformed", `the relay's request has no valid '${key}'`);
  }
  return value;
}

// Verify one entry of /approvals as approver `approverId`; raise if anything in it does not
// verify, so such a request is never shown as if it were real.  Everything in the result
// but `reportedByServer` is signed: the certificate checked against the directory, the
// statement signed by that client, each manifest signed by an approver and bound to the
// asked item and path, each wrap this approver holds matching its signed hash.
//
// A failure isRefusable accepts should be answered with refuseUnverifiable (after trying
// once more with a freshly verified directory: an approver added a moment ago may have
// signed something in it).
export async function reviewRequest(entry, { directory, approverId, hpkePrivate, now }) {
  const kind = entryText(entry, "kind");
  const id = entryText(entry, "id");
  const certificate = entryText(entry, "certificate");
  const enrollment = entry.enrollment ?? null;
  // A delegated certificate (a CI machine): the whole chain is verified with the statement
  // below; this names the approver at its end, shown as "enrolled by enr_… (approver …)".
  const enrolledBy =
    enrollment !== null && peekHeader(certificate).kid.startsWith("enr_")
      ? (await verifyEnrollment(enrollment, directory, { now })).issuer
      : null;
  const common = {
    id,
    kind,
    enrolledBy,
    threshold: entryCount(entry, "threshold", 1) || 1,
    approvals: entryCount(entry, "approvals", 0),
    // Only the relay says these (the source address): shown apart, as reported by server.
    reportedByServer: entryMapping(entry, "reported_by_server"),
  };
  if (kind === "access") {
    const verified = await verifyAccess(entryText(entry, "statement"), {
      directory,
      certificate,
      now,
      enrollment,
    });
    if (verified.hash !== `sha256:${id}`) {
      throw error("binding_mismatch", "the relay filed this statement under another request id");
    }
    const served = entry.items;
    if (served === null || typeof served !== "object" || Array.isArray(served)) {
      throw error("malformed", "the relay's request has no items");
    }
    const manifests = {};
    const wraps = {};
    const items = [];
    for (const asked of verified.statement.items) {
      const material = Object.hasOwn(served, asked.item) ? served[asked.item] : undefined;
      if (material === null || typeof material !== "object" || Array.isArray(material)) {
        throw error("binding_mismatch", `the relay served nothing for ${asked.item}`);
      }
      const token = entryText(material, "manifest");
      const manifest = await verifyManifest(token, directory);
      if (manifest.item !== asked.item || manifest.path !== asked.path) {
        throw error(
          "binding_mismatch",
          `the relay served another item's manifest for ${asked.path}`,
        );
      }
      if (asked.version !== null && manifest.version !== asked.version) {
        throw error("binding_mismatch", `the relay served another version of ${asked.path}`);
      }
      const listed = material.wraps;
      if (listed === null || typeof listed !== "object" || Array.isArray(listed)) {
        throw error("malformed", "the relay's request has no wraps");
      }
      const mine = manifest.keyset.wraps[approverId];
      if (mine === undefined)
        throw error("not_authorized", `${approverId} holds no share of ${asked.path}`);
      const opened = blobsFromWire(listed, "wraps");
      for (const name of asked.fields) {
        // Checked before anyone is shown the request: a wrap the manifest does not vouch
        // for is the relay's doing, never something to approve.
        if (!Object.hasOwn(opened, name) || (await wrapHash(opened[name])) !== mine[name]) {
          throw error(
            "manifest_mismatch",
            `the wrap of ${asked.path}/${name} is not the signed one`,
          );
        }
      }
      manifests[asked.item] = token;
      wraps[asked.item] = opened;
      items.push({
        path: manifest.path,
        version: manifest.version,
        fields: asked.fields,
        type: manifest.type,
        threshold: manifest.keyset.threshold,
        holders: manifest.keyset.approvers.length,
      });
    }
    const s = verified.statement;
    const cert = verified.certificate;
    return Object.freeze({
      ...common,
      ...shown(cert, s),
      items: freeze(items),
      cacheSeconds: s.cache.seconds,
      cacheScope: s.cache.scope,
      // The latest cache_until the relay's policy allows (0: no caching).
      cacheUntilMax: entryCount(entry, "cache_until_max", 0),
      access: verified,
      manifests: Object.freeze(manifests),
      wraps: Object.freeze(wraps),
      store: null,
    });
  }
  if (kind === "store") {
    const listedWraps = entryMapping(entry, "wraps");
    const upload = {
      statement: entryText(entry, "statement"),
      ciphertexts: blobsFromWire(entry.ciphertexts, "ciphertexts"),
      wraps: Object.fromEntries(
        Object.entries(listedWraps).map(([a, fs]) => [a, blobsFromWire(fs, "wraps")]),
      ),
    };
    const stored = await verifyStore(upload, {
      directory,
      approverId,
      hpkePrivate,
      certificate,
      now,
      prevManifest: entry.prev_manifest ?? null,
      enrollment,
    });
    if (stored.hash !== `sha256:${id}`) {
      throw error("binding_mismatch", "the relay filed this statement under another request id");
    }
    const st = stored.statement;
    return Object.freeze({
      ...common,
      ...shown(stored.certificate, st),
      items: freeze([
        {
          path: st.path,
          version: st.version,
          fields: Object.keys(st.fields),
          type: st.type,
          threshold: st.keyset.threshold,
          holders: st.keyset.approvers.length,
        },
      ]),
      cacheSeconds: 0,
      cacheScope: "none",
      cacheUntilMax: 0,
      access: null,
      manifests: Object.freeze({}),
      wraps: Object.freeze({}),
      store: stored,
    });
  }
  throw error("malformed", "unknown request kind");
}

function shown(cert, s) {
  return {
    clientId: cert.client.id,
    clientName: cert.client.name,
    clientKind: cert.client.kind,
    issuer: cert.issuer,
    scopes: cert.scopes,
    purpose: s.purpose,
    context: s.context,
    at: s.at,
    expiresAt: s.exp,
  };
}

// The cache_until of a release, as the terminal approver computes it: what the client asked
// for, cut to the relay policy's limit and to `cacheSeconds` from now if given (an approver
// may shorten the window, never extend it); 0 when that is not in the future.
export function releaseCacheUntil(review, { now, cacheSeconds = null }) {
  if (!review.cacheSeconds) return 0;
  let until = Math.min(review.at + review.cacheSeconds, review.cacheUntilMax);
  if (cacheSeconds !== null && cacheSeconds !== undefined)
    until = Math.min(until, now + cacheSeconds);
  return until > now ? Math.max(until, 0) : 0;
}

// The release token approving a reviewed access request.
export async function releaseReviewed(
  review,
  { directory, approverId, hpkePrivate, signingKey, now, cacheSeconds = null, random = null },
) {
  if (review.access === null) throw new TypeError("not an access request");
  return release({
    verified: review.access,
    manifests: review.manifests,
    wraps: review.wraps,
    directory,
    approverId,
    hpkePrivate,
    signingKey,
    now,
    cacheUntil: releaseCacheUntil(review, { now, cacheSeconds }),
    random,
  });
}
