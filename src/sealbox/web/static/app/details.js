// A consent request's details as the approvals page shows them: indented JSON, every
// character that could make the text read other than it is shown as U+FFFD, as the terminal
// approver does (sealbox/_relay/text.py): controls, format characters (bidi overrides,
// zero-width), line and paragraph separators, surrogates, private use, and the blank
// characters the display-text rule refuses (Hangul fillers, the braille blank, variation
// selectors).  JSON.stringify escapes the C0 controls inside strings; the line breaks it
// adds between members are its own and are kept.

export const UNSAFE =
  /(?!\n)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\u115f\u1160\u3164\uffa0\u2800\ufe00-\ufe0f\u{e0100}-\u{e01ef}]/gu;

export function detailsText(details) {
  return JSON.stringify(details, null, 2).replace(UNSAFE, "\uFFFD");
}
