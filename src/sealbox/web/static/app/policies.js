// The policies page: which approvers hold shares of which items, and how many must agree.

import * as api from "./api.js";
import { describe, el, shell, status } from "./ui.js";

async function main() {
  if (!(await shell())) return;
  const policies = (await api.get("/policies")).policies ?? [];
  document.querySelector("#policies tbody").replaceChildren(
    ...policies.map((p) =>
      el("tr", {}, el("td", {}, el("code", {}, p.pattern)), el("td", {}, `${p.threshold} of ${p.approvers.length}`),
        el("td", {}, p.approvers.join(", "))),
    ),
  );
  if (!policies.length) status("No policy: every item needs any one approver.");
}

main().catch((error) => status(describe(error), { error: true }));
