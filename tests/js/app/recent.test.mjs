// The relay's count of a requester's recent requests, as the approvals page words it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { recentText } from "../../../src/sealbox/web/static/app/recent.js";

const good = { window_seconds: 3600, requests: 12, denials: 3, locked: false, counted_up_to: 1000 };

test("a well-formed count in words", () => {
  assert.equal(recentText(good), "12 requests in the last hour, 3 denied");
  assert.equal(recentText({ ...good, requests: 1, denials: 0 }), "1 request in the last hour, 0 denied");
  assert.equal(
    recentText({ ...good, window_seconds: 600, requests: 1000, locked: true }),
    "1000+ requests in the last 600 seconds, 3 denied; locked out by the relay after denials in a row",
  );
});

test("a missing or malformed count is not reported, never an error", () => {
  for (const bad of [
    undefined, null, "12", [], { ...good, requests: -1 }, { ...good, requests: 1.5 },
    { ...good, denials: "3" }, { ...good, locked: "no" }, { ...good, window_seconds: 0 },
    { ...good, requests: 2 ** 60 },
  ]) {
    assert.equal(recentText(bad), "not reported");
  }
});
