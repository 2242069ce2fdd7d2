// This browser as an approver: its stored identity, the verified directory, and its keys for
// the length of one answer.
//
// Every page that signs goes through here. The directory is always verified in this browser
// from the link 0 it pinned at setup (or pairing), never taken from the relay on trust; the
// newest verified head is kept, so a relay that shows an older directory is caught
// (directory_rollback).

import { verifyDirectory } from "../sealbox/directory.js";
import {
  generateHpkeKey,
  generateSigningKey,
  HpkePrivateKey,
  parseHpkePublic,
  parseVerifyKey,
  SigningKey,
} from "../sealbox/keys.js";
import { KIND, newId } from "../sealbox/statements.js";
import * as api from "./api.js";
import { labels, loadApprover, saveApprover, unwrapKeys, wrapKeys } from "./custody.js";
import { unlockPrf } from "./passkey.js";

/** A missing local approver: this browser holds no keys for this vault. */
export class NoApproverHere extends Error {
  constructor() {
    super(
      "This browser holds no approver keys for this vault. Sign in on the browser where the " +
        "approver was set up, or restore its export (synced tier).",
    );
    this.code = "no_approver_here";
  }
}

/** The stored approver of this vault in this browser (public parts and wrapped keys). */
export async function me() {
  const entry = await loadApprover(api.vault);
  if (!entry) throw new NoApproverHere();
  return entry;
}

/** The directory, verified here from the pinned link 0 and the last head this browser saw. */
export async function directory() {
  const entry = await me();
  const served = await api.get("/directory");
  const verified = await verifyDirectory(served.links, {
    pinned: entry.pinned,
    cachedHead: entry.head ?? null,
  });
  if (!entry.head || verified.head.seq !== entry.head.seq) {
    await saveApprover({ ...entry, head: { seq: verified.head.seq, hash: verified.head.hash } });
  }
  return verified;
}

/**
 * Run `use({id, record, sig, hpke})` with this approver's private keys, unwrapped for it alone.
 *
 * Takes a passkey assertion with user verification (the biometric). Without the passkey, or
 * if the person is not verified, the authenticator gives no PRF output and nothing can be
 * signed or opened. The keys are non-extractable and dropped when `use` returns.
 */
export async function withKeys(use) {
  const entry = await me();
  const prf = await unlockPrf(entry.credentialId);
  let keys;
  try {
    const opened = await unwrapKeys(prf, entry.approverId, entry.wrapped);
    keys = {
      sig: new SigningKey(opened.sig, parseVerifyKey(entry.record.sig_pk)),
      hpke: new HpkePrivateKey(opened.hpke, parseHpkePublic(entry.record.hpke_pk)),
    };
  } finally {
    prf.fill(0);
  }
  try {
    return await use({ id: entry.approverId, record: entry.record, sig: keys.sig, hpke: keys.hpke });
  } finally {
    keys = null;
  }
}

/** Seconds since the epoch, as every statement counts time. */
export function now() {
  return Math.floor(Date.now() / 1000);
}

/**
 * A new browser approver's keys and directory record (setup and joining by pairing). The
 * private keys are extractable only until `keep` has wrapped them.
 */
export async function newApprover(name, tier) {
  const approverId = newId(KIND.approver);
  const sig = await generateSigningKey({ extractable: true });
  const hpke = await generateHpkeKey({ extractable: true });
  const record = {
    id: approverId,
    name,
    kind: "browser",
    tier,
    hpke_pk: hpke.publicKey().text,
    sig_pk: sig.publicKey().text,
  };
  return { approverId, record, sig, hpke };
}

/**
 * Wrap a new approver's keys under the PRF output of the passkey just made for it, and keep
 * them in this browser with the vault fingerprint it pins. Done before the relay is told: if
 * the relay's answer is lost on the way, the keys are not.
 */
export async function keep(fresh, made, pinned) {
  const wrapped = await wrapKeys(made.prf, fresh.approverId, {
    sig: fresh.sig.cryptoKey,
    hpke: fresh.hpke.cryptoKey,
  });
  made.prf.fill(0);
  await saveApprover({
    format: labels.keyRecord,
    vault: api.vault,
    approverId: fresh.approverId,
    record: fresh.record,
    credentialId: made.credentialId,
    wrapped,
    pinned,
    head: null,
    createdAt: now(),
  });
}
