// The one error type of sealbox's browser core; mirrors src/sealbox/errors.py.
//
// Every failure the core raises on purpose is a SealboxError whose `code` is the
// same stable string the Python package uses (docs/protocol.md, section "Errors"),
// so the browser, the relay and the Python clients report a failure the same way
// and tests can hold both implementations to one vector file.  Messages name
// *what* failed, never *with which bytes*: no key, secret or token goes in them.

/** Every error code of `sealbox.errors`, keyed by itself (`codes.malformed === "malformed"`). */
export const codes = Object.freeze({
  sealbox_error: "sealbox_error",
  malformed: "malformed",
  invalid_input: "invalid_input",
  verification_failed: "verification_failed",
  signature_invalid: "signature_invalid",
  decryption_failed: "decryption_failed",
  binding_mismatch: "binding_mismatch",
  certificate_invalid: "certificate_invalid",
  not_authorized: "not_authorized",
  manifest_mismatch: "manifest_mismatch",
  threshold_not_met: "threshold_not_met",
  expired: "expired",
  version_rollback: "version_rollback",
  directory_broken: "directory_broken",
  directory_rollback: "directory_rollback",
  directory_fork: "directory_fork",
  illegal_transition: "illegal_transition",
  relay_refused: "relay_refused",
  relay_unreachable: "relay_unreachable",
  denied: "denied",
  refused_unverifiable: "refused_unverifiable",
  request_expired: "request_expired",
  cancelled: "cancelled",
  not_logged_in: "not_logged_in",
  profile_exists: "profile_exists",
  login_failed: "login_failed",
  keyring_unavailable: "keyring_unavailable",
  audit_broken: "audit_broken",
  checkpoint_signer_unknown: "checkpoint_signer_unknown",
});

export class SealboxError extends Error {
  /**
   * @param {string} code one of `codes`
   * @param {string} message what failed (never secret bytes)
   */
  constructor(code, message) {
    // An unknown code is a bug in the caller; refusing it here keeps a typo from
    // turning into an error code that no peer or test knows.
    if (!Object.hasOwn(codes, code)) {
      throw new TypeError(`unknown sealbox error code ${JSON.stringify(code)}`);
    }
    super(message);
    this.name = "SealboxError";
    this.code = code;
  }
}
