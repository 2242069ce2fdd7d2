// The console's one way to the relay: JSON over fetch, with the session's CSRF token.
//
// The session cookie is HttpOnly (page code never sees it); every call that changes something
// carries the CSRF token the page was rendered with, which a page of another site cannot read.
// A session only lets the relay know which approver is asking: everything that releases,
// stores or admits is a statement this browser signs (see approver.js).

import { b64uEncode } from "../sealbox/encoding.js";

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

export const vault = meta("sealbox-vault");
let csrf = meta("sealbox-csrf");

/** A refusal from the relay, with its error code, message and hint (none is trusted text). */
export class RelayError extends Error {
  constructor(status, code, message, hint) {
    super(message || `the relay answered ${status}`);
    this.status = status;
    this.code = code || `http_${status}`;
    this.hint = hint || "";
  }
}

/** Keep the CSRF token of a session started on this page (setup, sign-in). */
export function useCsrf(token) {
  csrf = token;
}

export function signedIn() {
  return csrf !== "";
}

/** The path of a vault resource: `vaultPath("/approvals")` -> `/v1/vaults/<vault>/approvals`. */
export function vaultPath(path) {
  return `/v1/vaults/${encodeURIComponent(vault)}${path}`;
}

/** Call the relay; resolves to the parsed JSON body (null for 204), rejects with RelayError. */
export async function call(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-sealbox-csrf"] = csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new RelayError(0, "unreachable", "could not reach the relay", "Check the connection.");
  }
  if (response.status === 204) return null;
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const p = parsed && typeof parsed === "object" ? parsed : {};
    throw new RelayError(response.status, str(p.error), str(p.message), str(p.hint));
  }
  return parsed;
}

export const get = (path) => call("GET", vaultPath(path));
export const post = (path, body = {}) => call("POST", vaultPath(path), body);

/** Bytes as the relay's JSON carries them (unpadded base64url). */
export const b64u = (bytes) => b64uEncode(bytes);

function str(value) {
  return typeof value === "string" ? value : "";
}
