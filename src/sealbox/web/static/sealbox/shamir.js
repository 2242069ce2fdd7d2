// Shamir secret sharing over GF(2^8), byte-wise, for 32-byte field keys.
// Mirrors src/sealbox/crypto/shamir.py (protocol §4.3).
//
// A share is `x || y`: one byte x in 1..255 (the holder's position plus one),
// then one byte of y per secret byte.  The field is GF(2^8) with the AES
// polynomial x^8 + x^4 + x^3 + x + 1 (0x11B), as in the Python module.
//
// Threshold 1 is a polynomial of degree 0: every share's y *is* the secret,
// which is exactly "every holder has the whole key".
//
// Multiplication is a fixed sequence of eight shift-and-xor rounds with no table
// lookup indexed by secret bytes (log/exp tables would leak secret bytes through
// cache timing).  JavaScript gives no constant-time guarantee; what the threat
// model relies on is that the approver device running this is outside the
// relay's reach.

import { codes, SealboxError } from "./errors.js";

export const MAX_HOLDERS = 255;

/** Multiply in GF(2^8) mod 0x11B: eight rounds, no secret-dependent branches. */
function gfMul(a, b) {
  let product = 0;
  for (let i = 0; i < 8; i++) {
    product ^= -(b & 1) & a;
    const high = -((a >> 7) & 1);
    a = ((a << 1) ^ (high & 0x1b)) & 0xff;
    b >>= 1;
  }
  return product & 0xff;
}

/** Inverse in GF(2^8) as a^254 (a fixed multiplication chain); 0 maps to 0. */
function gfInv(a) {
  const a2 = gfMul(a, a);
  const a4 = gfMul(a2, a2);
  const a8 = gfMul(a4, a4);
  const a16 = gfMul(a8, a8);
  const a32 = gfMul(a16, a16);
  const a64 = gfMul(a32, a32);
  const a128 = gfMul(a64, a64);
  let result = gfMul(a128, a64);
  result = gfMul(result, a32);
  result = gfMul(result, a16);
  result = gfMul(result, a8);
  result = gfMul(result, a4);
  return gfMul(result, a2);
}

function defaultRandom(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/**
 * Split `secret` into `holders` shares, any `threshold` of which rebuild it.
 * Share i (0-based) has x = i + 1; the caller gives share i to the i-th holder
 * of an ordered list.  `random(n)` draws the coefficients (injected by vectors:
 * coefficient d of secret byte j is draw[j * (threshold - 1) + d - 1]).
 */
export function split(secret, threshold, holders, random = defaultRandom) {
  if (!(secret instanceof Uint8Array) || secret.length === 0) {
    throw new RangeError("secret must be a non-empty Uint8Array");
  }
  if (
    !Number.isInteger(threshold) ||
    !Number.isInteger(holders) ||
    !(1 <= threshold && threshold <= holders && holders <= MAX_HOLDERS)
  ) {
    throw new RangeError("need 1 <= threshold <= holders <= 255");
  }
  const degree = threshold - 1;
  const coefficients = random(degree * secret.length);
  if (!(coefficients instanceof Uint8Array) || coefficients.length !== degree * secret.length) {
    throw new RangeError("random source returned the wrong length");
  }
  const shares = [];
  for (let index = 0; index < holders; index++) {
    const x = index + 1;
    const share = new Uint8Array(1 + secret.length);
    share[0] = x;
    for (let pos = 0; pos < secret.length; pos++) {
      // Horner's rule, highest coefficient first.
      let acc = 0;
      for (let d = degree - 1; d >= 0; d--) {
        acc = gfMul(acc, x) ^ coefficients[pos * degree + d];
      }
      share[1 + pos] = degree ? gfMul(acc, x) ^ secret[pos] : secret[pos];
    }
    shares.push(share);
  }
  coefficients.fill(0);
  return shares;
}

/**
 * Rebuild the secret from at least `threshold` shares (the first `threshold` are used).
 *
 * `threshold_not_met` with fewer shares; `malformed` for shares of the wrong
 * length, x = 0 or two shares with the same x (which would make interpolation
 * meaningless).
 */
export function combine(shares, threshold, { secretBytes = 32 } = {}) {
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw new RangeError("threshold must be at least 1");
  }
  if (!Array.isArray(shares)) {
    throw new TypeError("shares must be an array");
  }
  if (shares.length < threshold) {
    throw new SealboxError(
      codes.threshold_not_met,
      `${shares.length} share(s) given, ${threshold} needed`,
    );
  }
  const used = shares.slice(0, threshold);
  const xs = [];
  for (const share of used) {
    if (!(share instanceof Uint8Array) || share.length !== secretBytes + 1) {
      throw new SealboxError(codes.malformed, `share: expected ${secretBytes + 1} bytes`);
    }
    if (share[0] === 0) {
      throw new SealboxError(codes.malformed, "share: x must not be 0");
    }
    if (xs.includes(share[0])) {
      throw new SealboxError(codes.malformed, "share: two shares with the same x");
    }
    xs.push(share[0]);
  }
  if (threshold === 1) {
    // Degree 0: the one share's y is the secret.
    return used[0].slice(1);
  }
  // Lagrange basis at 0: l_j(0) = prod_{m != j} x_m / (x_m - x_j); in GF(2^8) minus is xor.
  const basis = xs.map((xj, j) => {
    let num = 1;
    let den = 1;
    xs.forEach((xm, m) => {
      if (m !== j) {
        num = gfMul(num, xm);
        den = gfMul(den, xm ^ xj);
      }
    });
    return gfMul(num, gfInv(den));
  });
  const secret = new Uint8Array(secretBytes);
  for (let pos = 0; pos < secretBytes; pos++) {
    let acc = 0;
    used.forEach((share, j) => {
      acc ^= gfMul(share[1 + pos], basis[j]);
    });
    secret[pos] = acc;
  }
  return secret;
}
