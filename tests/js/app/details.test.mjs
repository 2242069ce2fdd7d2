// Consent details on the approvals page: nothing in them can forge a line or hide a character.
import assert from "node:assert/strict";
import { test } from "node:test";

import { detailsText } from "../../../src/sealbox/web/static/app/details.js";

const FORGERS = [
  "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1b", "\u202e",
  "\u200b", "\u3164", "\u115f", "\u1160", "\uffa0", "\u2800", "\ufe0f", "\u{e0100}", "\ue000",
];

test("every character the terminal approver replaces is replaced, in keys and values", () => {
  for (const c of FORGERS) {
    const text = detailsText({ [`k${c}`]: `a${c}b` });
    assert.ok(!text.includes(c), `U+${c.codePointAt(0).toString(16)} reached the page`);
    assert.equal(text.split("\n").length, 3, `U+${c.codePointAt(0).toString(16)} made a line`);
  }
});

test("plain text, accents and the indentation are kept", () => {
  assert.equal(detailsText({ a: "café", n: [1, 2] }),
    '{\n  "a": "café",\n  "n": [\n    1,\n    2\n  ]\n}');
});
