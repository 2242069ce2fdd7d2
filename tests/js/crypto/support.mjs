// Shared helpers for the crypto module tests: loading the project's vector files
// and converting their hex fields.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, "..", "..", "..");
export const staticRoot = join(repoRoot, "src", "sealbox", "web", "static", "sealbox");

/**
 * Parse a vector file, keeping integers beyond 2^53 exact: JSON.parse would round
 * 2^64 - 1 to a double, so such literals become `{ bigint: "..." }` first.  (Only
 * bare numbers match: digits inside strings are preceded by a quote or a digit.)
 */
export function loadJson(path) {
  const text = readFileSync(path, "utf8").replace(
    /(?<=[[,:]\s*)(-?\d{16,})(?=\s*[\],}])/g,
    (literal) => (Number.isSafeInteger(Number(literal)) ? literal : `{"bigint":"${literal}"}`),
  );
  return JSON.parse(text, (key, value) =>
    value !== null && typeof value === "object" && Object.keys(value).join() === "bigint"
      ? BigInt(value.bigint)
      : value,
  );
}

export function sealboxVectors(name) {
  return loadJson(join(repoRoot, "tests", "vectors", "sealbox", `${name}.json`));
}

export function wycheproof(name) {
  return loadJson(join(repoRoot, "tests", "vectors", "wycheproof", `${name}.json`));
}

export function hex(text) {
  if (text.length % 2) throw new Error("odd hex length");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A vector's length-prefixed part: text, integer, or `{hex}` bytes. */
export function part(value) {
  return value !== null && typeof value === "object" && "hex" in value ? hex(value.hex) : value;
}

/** Assert that `fn` (sync or async) throws a SealboxError with `code`. */
export async function rejectsWithCode(assert, fn, code, label = "") {
  let error = null;
  try {
    await fn();
  } catch (caught) {
    error = caught;
  }
  assert.ok(error !== null, `${label}: expected ${code}, nothing was thrown`);
  assert.equal(error.name, "SealboxError", `${label}: expected SealboxError, got ${error}`);
  assert.equal(error.code, code, `${label}: expected ${code}, got ${error.code} (${error.message})`);
}
