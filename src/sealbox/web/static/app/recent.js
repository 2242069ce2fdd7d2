// What the relay says of a requester's requests lately, in words.
//
// The relay counts them itself and nobody signs the count: a relay could make it up or leave it
// out. The approvals page shows it apart from the verified facts, beside the source address,
// as reported by server. A missing or malformed count is shown as not reported, never as an
// error: it is no fact to verify, and it must not keep a request from being seen.

const count = (n) => Number.isSafeInteger(n) && n >= 0;

/** The relay's `recent` object as text; "not reported" if absent or malformed. */
export function recentText(recent) {
  if (
    recent === null ||
    typeof recent !== "object" ||
    !["window_seconds", "requests", "denials", "counted_up_to"].every((k) => count(recent[k])) ||
    recent.window_seconds === 0 ||
    typeof recent.locked !== "boolean"
  ) {
    return "not reported";
  }
  const period = recent.window_seconds === 3600 ? "hour" : `${recent.window_seconds} seconds`;
  const more = recent.requests >= recent.counted_up_to ? "+" : "";
  const text =
    `${recent.requests}${more} request${recent.requests === 1 ? "" : "s"} in the last ${period}, ` +
    `${recent.denials} denied`;
  return recent.locked ? `${text}; locked out by the relay after denials in a row` : text;
}
