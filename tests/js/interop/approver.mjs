// A browser approver driven from Python (tests/unit/web/test_js_interop.py).
//
// Reads one JSON request on stdin: {"op": ..., ...}; writes one JSON answer on stdout:
// the op's result, or {"error": code, "message": ...} for a SealboxError.  Private keys
// arrive in their text forms on stdin and are never written out; blobs are base64url.

import { SealboxError } from "../../../src/sealbox/web/static/sealbox/errors.js";
import { b64uDecode, b64uEncode } from "../../../src/sealbox/web/static/sealbox/encoding.js";
import {
  generateSigningKey,
  hpkeKeyFromRaw,
  signingKeyFromSeed,
} from "../../../src/sealbox/web/static/sealbox/keys.js";
import { enrollmentToken } from "../../../src/sealbox/web/static/sealbox/enrollment_token.js";
import { KIND, newId } from "../../../src/sealbox/web/static/sealbox/statements.js";
import {
  appendLink,
  genesisLink,
  pairingCode,
  vaultFingerprint,
  vaultSafetyCode,
  verifyDirectory,
} from "../../../src/sealbox/web/static/sealbox/directory.js";
import {
  certifyLogin,
  fnmatchCase,
  issueEnrollment,
  verifyCertificate,
} from "../../../src/sealbox/web/static/sealbox/certificates.js";
import {
  signManifest,
  storeAsApprover,
  verifyStore,
} from "../../../src/sealbox/web/static/sealbox/store.js";
import {
  isRefusable,
  refuseUnverifiable,
  releaseReviewed,
  reviewRequest,
} from "../../../src/sealbox/web/static/sealbox/access.js";
import {
  answerConsent,
  consentDetailsHash,
  verifyConsentRequest,
} from "../../../src/sealbox/web/static/sealbox/consent.js";
import * as statements from "../../../src/sealbox/web/static/sealbox/statements.js";

const { checkDisplayText } = statements;
const READERS = Object.fromEntries(
  Object.values(statements)
    .filter((f) => typeof f === "function" && typeof f.typ === "string")
    .map((f) => [f.typ, f]),
);

const SIG_PREFIX = "sbx-ed25519-sk-v1:";
const HPKE_PREFIX = "sbx-hpke-sk-v1:";

function privateRaw(text, prefix) {
  if (typeof text !== "string" || !text.startsWith(prefix))
    throw new TypeError("bad private key text");
  return b64uDecode(text.slice(prefix.length), { length: 32 });
}

const signingKey = (text) => signingKeyFromSeed(privateRaw(text, SIG_PREFIX));
const hpkeKey = (text) => hpkeKeyFromRaw(privateRaw(text, HPKE_PREFIX));
const mapValues = (obj, fn) => Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, fn(v)]));

async function directoryOf(req) {
  return verifyDirectory(req.links, {
    pinned: req.pinned ?? (await vaultFingerprint(req.links[0])),
  });
}

const OPS = {
  // Verify a consent request as the console does, then consent to it (or report why not).
  async consent(req) {
    const d = await directoryOf(req);
    const verified = await verifyConsentRequest(req.statement, {
      directory: d,
      certificate: req.certificate,
      now: req.now,
    });
    const consent = await answerConsent(verified, {
      directory: d,
      approverId: req.approver,
      signingKey: await signingKey(req.sig_sk),
      now: req.now,
      ttl: req.ttl ?? null,
    });
    return {
      consent,
      hash: verified.hash,
      action: verified.statement.action,
      details: verified.statement.details,
      details_hash: await consentDetailsHash(verified.statement.details),
    };
  },

  // Sign link 0 for a record, and report the codes a person would compare.
  async genesis(req) {
    const link = await genesisLink(req.vault, req.record, await signingKey(req.sig_sk), {
      now: req.now,
    });
    return {
      link,
      fingerprint: await vaultFingerprint(link),
      safety_code: await vaultSafetyCode(link),
      pairing_code: await pairingCode(req.record),
    };
  },

  // Verify a chain and append a link to it.
  async append(req) {
    const d = await directoryOf(req);
    const link = await appendLink(
      d,
      req.link_op,
      req.record,
      await signingKey(req.sig_sk),
      req.signer,
      { now: req.now },
    );
    return { link, head: { ...d.head } };
  },

  // Make a CI enrollment as the console does: a fresh delegation key, the statement signed
  // with this approver's key, and the token for the CI secret store.
  async enroll(req) {
    const d = await directoryOf(req);
    const delegation = await generateSigningKey({ extractable: true });
    const enrollment = newId(KIND.enrollment);
    const statement = await issueEnrollment(d, {
      issuer: req.approver,
      signingKey: await signingKey(req.sig_sk),
      enrollmentId: enrollment,
      delegationKey: delegation.publicKey(),
      constraints: req.constraints,
      now: req.now,
    });
    const token = await enrollmentToken({
      server: req.server,
      vault: d.vault,
      fingerprint: d.fingerprint,
      enrollment,
      signingKey: delegation,
    });
    return { statement, token };
  },

  // Approve a login: certify the client key the relay listed.
  async certify(req) {
    const d = await directoryOf(req);
    const certificate = await certifyLogin(d, req.login, {
      issuer: req.approver,
      signingKey: await signingKey(req.sig_sk),
      now: req.now,
    });
    return { certificate };
  },

  // Review an /approvals entry as an access request and release it; a request that does
  // not verify is refused with a signed deny (grounds "unverifiable"), as the app will.
  async review_release(req) {
    const d = await directoryOf(req);
    const hpkePrivate = await hpkeKey(req.hpke_sk);
    const key = await signingKey(req.sig_sk);
    try {
      const review = await reviewRequest(req.entry, {
        directory: d,
        approverId: req.approver,
        hpkePrivate,
        now: req.now,
      });
      const release = await releaseReviewed(review, {
        directory: d,
        approverId: req.approver,
        hpkePrivate,
        signingKey: key,
        now: req.now,
      });
      return {
        release,
        purpose: review.purpose,
        paths: review.items.map((i) => i.path),
        issuer: review.issuer,
        enrolled_by: review.enrolledBy,
      };
    } catch (exc) {
      if (!isRefusable(exc)) throw exc;
      const deny = await refuseUnverifiable({
        requestId: req.entry.id,
        code: exc.code,
        directory: d,
        approverId: req.approver,
        signingKey: key,
        now: req.now,
      });
      return { error: exc.code, message: exc.message, deny };
    }
  },

  // Verify a client's store upload and sign its manifest.
  async verify_store(req) {
    const d = await directoryOf(req);
    const upload = {
      statement: req.statement,
      ciphertexts: mapValues(req.ciphertexts, (b) => b64uDecode(b)),
      wraps: mapValues(req.wraps, (w) => mapValues(w, (b) => b64uDecode(b))),
    };
    const verified = await verifyStore(upload, {
      directory: d,
      approverId: req.approver,
      hpkePrivate: await hpkeKey(req.hpke_sk),
      certificate: req.certificate,
      now: req.now,
      prevManifest: req.prev_manifest ?? null,
    });
    const manifest = await signManifest(verified, {
      directory: d,
      approverId: req.approver,
      signingKey: await signingKey(req.sig_sk),
      now: req.now,
    });
    return { manifest, hash: verified.hash };
  },

  // Store an item directly as an approver.
  async store(req) {
    const d = await directoryOf(req);
    const out = await storeAsApprover({
      directory: d,
      approverId: req.approver,
      signingKey: await signingKey(req.sig_sk),
      item: req.item,
      path: req.path,
      version: req.version,
      prev: req.prev ?? null,
      values: mapValues(req.values, (b) => b64uDecode(b)),
      approvers: req.approvers,
      threshold: req.threshold,
      now: req.now,
    });
    return {
      manifest: out.manifest,
      ciphertexts: mapValues(out.ciphertexts, b64uEncode),
      wraps: mapValues(out.wraps, (w) => mapValues(w, b64uEncode)),
    };
  },

  // Host-pattern matching and display-text rules, case by case.
  async fnmatch(req) {
    return { results: req.cases.map(([name, pattern]) => fnmatchCase(name, pattern)) };
  },

  async display_text(req) {
    return {
      results: req.cases.map((text) => {
        try {
          checkDisplayText(text, "text", 4096);
          return "ok";
        } catch (exc) {
          if (exc instanceof SealboxError) return exc.code;
          throw exc;
        }
      }),
    };
  },

  // Verify certificates (each with its enrollment, if any) against a directory.
  async verify_certificates(req) {
    const d = await directoryOf(req);
    const results = [];
    for (const [token, enrollment] of req.cases) {
      try {
        const cert = await verifyCertificate(token, d, { now: req.now, enrollment });
        results.push(`ok ${cert.client.id}`);
      } catch (exc) {
        if (!(exc instanceof SealboxError)) throw exc;
        results.push(exc.code);
      }
    }
    return { results };
  },

  // Read many payloads strictly, each with the reader of its statement type.
  async read_many(req) {
    return {
      results: req.cases.map(([typ, payload]) => {
        try {
          READERS[typ](payload);
          return "ok";
        } catch (exc) {
          if (exc instanceof SealboxError) return exc.code;
          throw exc;
        }
      }),
    };
  },
};

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const op = OPS[req.op];
  if (!op) throw new TypeError(`unknown op ${req.op}`);
  let out;
  try {
    out = await op(req);
  } catch (exc) {
    if (!(exc instanceof SealboxError)) throw exc;
    out = { error: exc.code, message: exc.message };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((exc) => {
  // Only the kind of failure and its message: never the request (it holds private keys).
  process.stderr.write(`${exc?.name ?? "Error"}: ${exc?.message ?? exc}\n`);
  process.exit(1);
});
