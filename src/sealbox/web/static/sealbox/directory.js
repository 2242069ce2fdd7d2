// The approver directory (docs/protocol.md section 6): a hash chain of signed links rooted
// in link 0.  A port of src/sealbox/protocol/directory.py.
//
// Link 0 is self-signed by the vault's first approver; its hash is the vault fingerprint a
// client pins.  Every later link names the hash of the one before and is signed by an
// approver in the set as of that previous link.  A browser that verifies the whole chain
// from its pinned link 0 knows the current approver keys without trusting the relay.

import { SealboxError } from "./errors.js";
import {
  b64uDecode,
  constantTimeEqual,
  digest,
  digestBytes,
  lp,
  parseCanonical,
  utf8,
} from "./encoding.js";
import { safetyCode } from "./keys.js";
import { peekHeader, statementHash } from "./jws.js";
import {
  approverRecordPayload,
  directoryLinkPayload,
  readApproverRecord,
  readDirectoryLink,
  signTyped,
  verifyTyped,
} from "./statements.js";

// Longest chain verified (each link is one Ed25519 verification).
export const MAX_LINKS = 10_000;

const FINGERPRINT_VAULT = "sealbox/v1/fingerprint/vault";
const FINGERPRINT_APPROVER = "sealbox/v1/fingerprint/approver";

const broken = (message) => new SealboxError("directory_broken", message);

// A Map that cannot be changed after it is built: a verified directory is a fact about a
// chain, and nothing downstream may add an approver to it.
class ReadonlyMap extends Map {
  constructor(entries = []) {
    super();
    for (const [k, v] of entries) Map.prototype.set.call(this, k, v);
    Object.freeze(this);
  }

  set() {
    throw new TypeError("a verified directory cannot be changed");
  }

  delete() {
    throw new TypeError("a verified directory cannot be changed");
  }

  clear() {
    throw new TypeError("a verified directory cannot be changed");
  }
}

function ascii(token) {
  // Tokens are compact JWS: base64url and dots only.  Anything else is not one.
  if (typeof token !== "string" || !/^[\x00-\x7f]*$/.test(token)) {
    throw new SealboxError("malformed", "directory link: not a compact JWS");
  }
  return utf8(token);
}

// The vault fingerprint: the labelled hash of the exact link-0 token.
export async function vaultFingerprint(link0) {
  return digest(FINGERPRINT_VAULT, ascii(link0));
}

// The short code a person compares when pinning a vault (four groups of five digits).
export async function vaultSafetyCode(link0) {
  return safetyCode(await digestBytes(FINGERPRINT_VAULT, ascii(link0)));
}

// The code a person compares on a new approver device and on the device adding it.  It
// covers the id and both public keys, so a relay that swapped any of them between the two
// devices shows a different code.  `record` is a read record or its payload form.
export async function pairingCode(record) {
  const hpke = typeof record.hpke_pk === "string" ? record.hpke_pk : record.hpke_pk.text;
  const sig = typeof record.sig_pk === "string" ? record.sig_pk : record.sig_pk.text;
  return safetyCode(await digestBytes(FINGERPRINT_APPROVER, lp(record.id, hpke, sig)));
}

// The current record of `approverId` in a verified directory; not_authorized if not a member.
export function directoryApprover(directory, approverId) {
  const record = directory.approvers.get(approverId);
  if (record === undefined) {
    throw new SealboxError(
      "not_authorized",
      `${approverId} is not a current approver of this vault`,
    );
  }
  return record;
}

// A device that asked to be added accepts the directory only if it holds its record exactly
// as it was sent: a relay that swapped a key or the name is caught here.
export function requireRecord(directory, record) {
  const listed = directory.approvers.get(record.id);
  const wanted = readApproverRecord(approverRecordPayload(record));
  if (listed === undefined || !sameRecord(listed, wanted)) {
    throw new SealboxError(
      "binding_mismatch",
      "the directory does not hold this device's keys as they were sent",
    );
  }
  return listed;
}

function sameKey(a, b) {
  return a.text === b.text;
}

// Apply one link's op to the approver set (a plain Map, changed in place).
function apply(approvers, link, signer) {
  const a = link.approver;
  if (link.op === "add") {
    if (approvers.has(a.id)) throw broken(`link ${link.seq}: ${a.id} is already an approver`);
    for (const other of approvers.values()) {
      if (sameKey(other.hpke_pk, a.hpke_pk) || sameKey(other.sig_pk, a.sig_pk)) {
        // A key listed twice would make "which approver signed this" ambiguous.
        throw broken(`link ${link.seq}: key already used by ${other.id}`);
      }
    }
    approvers.set(a.id, a);
  } else if (link.op === "remove") {
    const current = approvers.get(a.id);
    if (current === undefined || !sameRecord(current, a)) {
      throw broken(`link ${link.seq}: removes an approver not in the set as listed`);
    }
    if (approvers.size === 1) throw broken(`link ${link.seq}: would remove the last approver`);
    approvers.delete(a.id);
  } else {
    if (!approvers.has(a.id)) throw broken(`link ${link.seq}: updates an approver not in the set`);
    if (signer !== a.id) {
      // Rotating a member's keys is that member's own act: were any member allowed to, one
      // device could re-key all the others to keys it holds.
      throw broken(`link ${link.seq}: an approver may update only itself`);
    }
    for (const other of approvers.values()) {
      if (
        other.id !== a.id &&
        (sameKey(other.hpke_pk, a.hpke_pk) || sameKey(other.sig_pk, a.sig_pk))
      ) {
        throw broken(`link ${link.seq}: key already used by ${other.id}`);
      }
    }
    approvers.set(a.id, a);
  }
  return approvers;
}

function sameRecord(x, y) {
  return (
    x.id === y.id &&
    x.name === y.name &&
    x.kind === y.kind &&
    x.tier === y.tier &&
    sameKey(x.hpke_pk, y.hpke_pk) &&
    sameKey(x.sig_pk, y.sig_pk)
  );
}

function unverifiedPayload(token) {
  return parseCanonical(b64uDecode(token.split(".")[1], { what: "JWS payload" }));
}

// Verify a whole chain from the pinned vault fingerprint; return the current set.
//
// `cachedHead` ({seq, hash}) is the newest link this device verified before: a shorter
// chain is directory_rollback (the relay hides newer links, e.g. a removal), another link
// at that seq is directory_fork (the relay shows different devices different sets).  Any
// other failure is directory_broken.
export async function verifyDirectory(tokens, { pinned, cachedHead = null } = {}) {
  if (typeof pinned !== "string" || !/^[\x00-\x7f]*$/.test(pinned)) {
    throw new SealboxError("malformed", "pinned vault fingerprint: expected a sha256: digest");
  }
  if (!Array.isArray(tokens) || tokens.length === 0) throw broken("the directory is empty");
  if (tokens.length > MAX_LINKS) throw broken("the directory is longer than sealbox verifies");
  let fingerprint;
  try {
    fingerprint = await vaultFingerprint(tokens[0]);
  } catch (exc) {
    if (exc instanceof SealboxError) throw broken(`link 0 does not verify: ${exc.message}`);
    throw exc;
  }
  if (!constantTimeEqual(fingerprint, pinned)) {
    throw broken("link 0 does not match the pinned vault fingerprint");
  }
  if (cachedHead !== null && cachedHead.seq >= tokens.length) {
    throw new SealboxError(
      "directory_rollback",
      `relay served ${tokens.length} link(s); this device already saw link ${cachedHead.seq}`,
    );
  }
  const approvers = new Map();
  const links = [];
  let vault = "";
  let prevHash = null;
  let prevAt = 0;
  for (let seq = 0; seq < tokens.length; seq += 1) {
    const token = tokens[seq];
    let header;
    let link;
    try {
      header = peekHeader(token);
      let signer;
      if (seq === 0) {
        // Self-signed: the key comes from the link itself, which the pinned fingerprint
        // has already fixed byte for byte.
        signer = readDirectoryLink(unverifiedPayload(token)).approver;
      } else {
        signer = approvers.get(header.kid);
        if (signer === undefined) {
          throw new SealboxError(
            "not_authorized",
            `signer is not an approver as of link ${seq - 1}`,
          );
        }
      }
      link = await verifyTyped(token, readDirectoryLink, signer.sig_pk, signer.id);
    } catch (exc) {
      if (exc instanceof SealboxError) throw broken(`link ${seq} does not verify: ${exc.message}`);
      throw exc;
    }
    if (seq === 0) {
      vault = link.vault;
      if (link.op !== "add" || link.approver.id !== header.kid) {
        throw broken("link 0 must be the first approver adding itself");
      }
    }
    if (link.seq !== seq || link.prev !== prevHash) {
      throw broken(`link ${seq}: does not chain to link ${seq - 1}`);
    }
    if (link.vault !== vault) throw broken(`link ${seq}: belongs to another vault`);
    if (link.at < prevAt) throw broken(`link ${seq}: dated before the link it follows`);
    apply(approvers, link, header.kid);
    prevHash = await statementHash(token);
    prevAt = link.at;
    links.push(link);
    if (
      cachedHead !== null &&
      seq === cachedHead.seq &&
      !constantTimeEqual(prevHash, cachedHead.hash)
    ) {
      throw new SealboxError(
        "directory_fork",
        `link ${seq} differs from the one this device saw before: the relay is showing ` +
          "different directories to different devices",
      );
    }
  }
  return Object.freeze({
    vault,
    fingerprint: pinned,
    approvers: new ReadonlyMap(approvers),
    head: Object.freeze({ seq: tokens.length - 1, hash: prevHash }),
    link0: tokens[0],
    tokens: Object.freeze([...tokens]),
    links: Object.freeze(links),
  });
}

// Link 0: the first approver adds itself, signing with its own key.  `record` is the
// approver record (read, or its payload form); `signingKey` a keys.js SigningKey.
export async function genesisLink(vault, record, signingKey, { now }) {
  const approver = readApproverRecord(approverRecordPayload(record));
  if (signingKey.publicKey().text !== approver.sig_pk.text) {
    throw new TypeError("link 0 must be signed by the approver it adds");
  }
  const payload = directoryLinkPayload({ vault, seq: 0, prev: null, op: "add", approver, at: now });
  // signTyped reads the payload first: link 0 that no verifier accepts would brick the vault.
  return signTyped(readDirectoryLink, payload, signingKey, approver.id);
}

// A new link on top of a verified `directory`, signed by the current approver `signerId`.
// The result is checked as a verifier would (parsed, then applied to the current set), so a
// bad link is refused here rather than by every device later.
export async function appendLink(directory, op, record, signingKey, signerId, { now }) {
  const signer = directoryApprover(directory, signerId);
  if (signingKey.publicKey().text !== signer.sig_pk.text) {
    throw new TypeError("the signing key is not the signer's directory key");
  }
  const payload = directoryLinkPayload({
    vault: directory.vault,
    seq: directory.head.seq + 1,
    prev: directory.head.hash,
    op,
    approver: readApproverRecord(approverRecordPayload(record)),
    at: now,
  });
  const link = readDirectoryLink(payload);
  apply(new Map(directory.approvers), link, signerId);
  return signTyped(readDirectoryLink, payload, signingKey, signerId);
}
