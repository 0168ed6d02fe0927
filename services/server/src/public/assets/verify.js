// Verifies a status page in the visitor's browser, from the hub's own origin only:
// for every site it fetches the signed results of the rounds the page shows (each
// incident's opening and resolving round), checks each Ed25519 signature with
// WebCrypto against the validator's key, checks that the signed bytes carry the
// assignment, status and hub id the record claims, recomputes each round's
// majority and compares it with what the page shows (down when an incident
// opened, or degraded for a slowdown; up when it was resolved). The verdict is written into
// #verification[data-verdict] ("verified", "failed", "unsupported" or "error").
"use strict";

(function () {
  const STATUS_CODES = { 1: "up", 2: "down", 3: "degraded" };
  const TAG_LENGTH = 18; // "overlaps/v1/result", "overlaps/v2/result", ...

  function bytesOf(hex) {
    if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) {
      throw new Error("malformed hex");
    }
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    return out;
  }

  // The fields at the start of the signed layout (PROTOCOL.md §4): tag, 0x00,
  // hub id (u16 BE length + UTF-8), assignment id (i64 BE), status (u8).
  function parseSigned(bytes) {
    const text = new TextDecoder("utf-8", { fatal: true });
    if (bytes.length < TAG_LENGTH + 12) throw new Error("signed bytes too short");
    const tag = text.decode(bytes.subarray(0, TAG_LENGTH));
    if (!/^overlaps\/v[0-9]+\/result$/.test(tag) || bytes[TAG_LENGTH] !== 0) {
      throw new Error("not a signed result (tag " + JSON.stringify(tag) + ")");
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const hubLength = view.getUint16(TAG_LENGTH + 1);
    const hubStart = TAG_LENGTH + 3;
    if (bytes.length < hubStart + hubLength + 9) throw new Error("signed bytes too short");
    const hub = text.decode(bytes.subarray(hubStart, hubStart + hubLength));
    const assignment = view.getBigInt64(hubStart + hubLength);
    const status = STATUS_CODES[bytes[hubStart + hubLength + 8]] || "invalid";
    return { tag, hub, assignment, status };
  }

  // The status most results carry; a tie (or nothing) is unknown.
  function majority(statuses) {
    const counts = new Map();
    for (const s of statuses) counts.set(s, (counts.get(s) || 0) + 1);
    let best = "unknown";
    let bestCount = 0;
    let tie = false;
    for (const [status, count] of counts) {
      if (count > bestCount) {
        best = status;
        bestCount = count;
        tie = false;
      } else if (count === bestCount) {
        tie = true;
      }
    }
    return tie || bestCount === 0 ? "unknown" : best;
  }

  async function verifySignature(result, signed) {
    const key = await crypto.subtle.importKey(
      "raw", bytesOf(result.public_key), { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, bytesOf(result.signature), signed);
  }

  // What the page shows each round settled, from the rendered incidents.
  function shownClaims(article) {
    const claims = new Map();
    for (const item of article.querySelectorAll("li.incident")) {
      const id = item.dataset.incidentId;
      if (item.dataset.openedRound) {
        // A slowdown's opening round settled degraded, an outage's down.
        const opened = item.dataset.openedStatus === "degraded" ? "degraded" : "down";
        claims.set(item.dataset.openedRound, { status: opened, what: "incident " + id + " opened", item });
      }
      if (item.dataset.resolvedRound) {
        claims.set(item.dataset.resolvedRound, { status: "up", what: "incident " + id + " resolved", item });
      }
    }
    return claims;
  }

  async function verifySite(article, hubId, tally) {
    const name = (article.querySelector("h3") || article).firstChild.textContent.trim();
    const response = await fetch(article.dataset.records, { credentials: "omit" });
    if (!response.ok) throw new Error("records of " + name + ": HTTP " + response.status);
    const records = await response.json();
    const claims = shownClaims(article);
    const failures = [];
    const served = new Set();
    for (const round of records.rounds) {
      served.add(String(round.round));
      if (round.pruned === true && round.results.length === 0) {
        // Past the hub's retention: reported as unchecked, never as verified.
        tally.pruned += 1;
        continue;
      }
      const where = "round " + round.round + " of " + name;
      const statuses = [];
      for (const result of round.results) {
        tally.signatures += 1;
        let signed;
        let parsed;
        try {
          signed = bytesOf(result.signed_bytes);
          parsed = parseSigned(signed);
        } catch (err) {
          failures.push(where + ": the signed bytes of validator " + result.validator_id + " are malformed (" + err.message + ")");
          continue;
        }
        if (parsed.hub !== hubId) {
          failures.push(where + ": validator " + result.validator_id + " signed for hub " + JSON.stringify(parsed.hub) + ", not " + JSON.stringify(hubId));
          continue;
        }
        if (parsed.assignment !== BigInt(result.assignment_id) || parsed.status !== result.status) {
          failures.push(where + ": validator " + result.validator_id + " signed assignment " + parsed.assignment + " " + parsed.status + ", the record says assignment " + result.assignment_id + " " + result.status);
          continue;
        }
        let valid = false;
        try {
          valid = await verifySignature(result, signed);
        } catch (err) {
          if (err && err.name === "NotSupportedError") throw err;
          valid = false;
        }
        if (!valid) {
          failures.push(where + ": the signature of validator " + result.validator_id + " (key " + String(result.public_key).slice(0, 12) + "…) does not verify");
          continue;
        }
        tally.valid += 1;
        statuses.push(parsed.status);
      }
      tally.rounds += 1;
      const settled = majority(statuses);
      const claim = claims.get(String(round.round));
      if (claim) {
        tally.claims += 1;
        if (settled !== claim.status) {
          failures.push(where + ": the majority of the valid signed results is " + settled + ", the page shows " + claim.status + " (" + claim.what + ")");
          claim.item.dataset.verified = "no";
        } else if (claim.item.dataset.verified !== "no") {
          claim.item.dataset.verified = "yes";
        }
      }
    }
    for (const [round, claim] of claims) {
      if (!served.has(round)) {
        failures.push("round " + round + " of " + name + ": no signed results were served for what the page shows (" + claim.what + ")");
        claim.item.dataset.verified = "no";
      }
    }
    return failures;
  }

  function report(section, verdict, text, details) {
    section.dataset.verdict = verdict;
    document.getElementById("verification-verdict").textContent = text;
    const list = document.getElementById("verification-details");
    list.replaceChildren(...details.map((line) => {
      const item = document.createElement("li");
      item.textContent = line;
      return item;
    }));
  }

  async function run() {
    const section = document.getElementById("verification");
    const main = document.getElementById("status-page");
    if (!section || !main) return;
    if (!window.crypto || !crypto.subtle) {
      report(section, "unsupported", "Cannot verify here: this browser offers no WebCrypto (it needs HTTPS or localhost). The signed records are linked from every bar and incident.", []);
      return;
    }
    report(section, "pending", "Verifying the signed results in your browser…", []);
    const tally = { signatures: 0, valid: 0, rounds: 0, claims: 0, pruned: 0 };
    let failures = [];
    try {
      // A few sites at a time: a page of 50 stays well within the hub's rate limit.
      const articles = Array.from(document.querySelectorAll("article.site[data-records]"));
      for (let i = 0; i < articles.length; i += 4) {
        const batch = articles.slice(i, i + 4).map((a) => verifySite(a, main.dataset.hubId, tally));
        failures = failures.concat((await Promise.all(batch)).flat());
      }
    } catch (err) {
      if (err && err.name === "NotSupportedError") {
        report(section, "unsupported", "Cannot verify here: this browser has no Ed25519 in WebCrypto. The signed records are linked from every bar and incident.", []);
      } else {
        report(section, "error", "FAILED: the signed records could not be checked (" + (err && err.message) + ").", []);
      }
      return;
    }
    const unchecked = tally.pruned > 0
      ? " " + tally.pruned + " older rounds were not checked: their results are past the hub's retention."
      : "";
    if (failures.length > 0) {
      report(section, "failed", "FAILED: " + failures[0] + (failures.length > 1 ? " (and " + (failures.length - 1) + " more problems)" : ""), failures);
    } else if (tally.rounds === 0) {
      report(section, "verified", "Verified: nothing to check yet (no incident rounds with stored results in the last 90 days); every bar links to its signed results." + unchecked, []);
    } else {
      report(section, "verified",
        "Verified: " + tally.valid + " of " + tally.signatures + " signatures valid over " + tally.rounds +
        " rounds; the majority of every round matches the page (" + tally.claims + " incident openings and resolutions)." + unchecked, []);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", run);
  } else {
    run();
  }
})();
