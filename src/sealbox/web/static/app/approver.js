// This browser as an approver: its stored identity, the verified directory, and its keys for
// the length of one answer.
//
// Every page that signs goes through here. The directory is always verified in this browser
// from the link 0 it pinned at setup (or pairing), never taken from the relay on trust; the
// newest verified head is kept, so a relay that shows an older directory is caught
// (directory_rollback).

import { verifyDirectory } from "../sealbox/directory.js";
import { HpkePrivateKey, parseHpkePublic, parseVerifyKey, SigningKey } from "../sealbox/keys.js";
import * as api from "./api.js";
import { loadApprover, saveApprover, unwrapKeys } from "./custody.js";
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
