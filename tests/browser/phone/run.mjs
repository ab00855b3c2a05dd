// Runs the phone app's browser scenarios in order and prints one JSON
// result on stdout: {ok, scenarios: {name: {ok, failures, steps, ms}}}.
// Started by tests/scenarios/phone_app.rs, which sets up the server, the
// case, its key and the coordinator's CLI device and passes them in the
// environment (see harness.mjs `environment`). FIELDSYNC_PHONE_ONLY=a,b runs
// only the named scenarios (while writing them).
//
// While the app is being written, without rebuilding the server for each
// change: start `fieldsync serve`, make the case, an enrolled coordinator
// device and its `key new`, put `tests/browser/app-dev-server.mjs` in front
// of the server (UPSTREAM=http://…), and run this script with FIELDSYNC_URL
// set to the dev server and the other variables as phone_app.rs sets them.
//
// Each scenario gets its own phone (a fresh chromium profile), so one that
// fails leaves the others a clean start; within a scenario the steps build
// on each other and the first broken step ends it.

import { Checks, environment, coordinator, pageProblems } from "./harness.mjs";
import { since } from "../lib.mjs";
import { recordOffline } from "./record-offline.mjs";
import { interrupted } from "./interrupted.mjs";
import { atRest } from "./at-rest.mjs";
import { deleteAfterSync } from "./delete-after-sync.mjs";
import { languages } from "./languages.mjs";

const SCENARIOS = [
  // 1 enroll, 2 offline, 3 sync and the coordinator's view, 5 merge
  ["record-offline", recordOffline],
  // 4 a tab closed mid-sync and mid-upload
  ["interrupted", interrupted],
  // 6 a passphrase and a storage dump, 7 quick delete
  ["at-rest", atRest],
  // 7 delete-after-sync
  ["delete-after-sync", deleteAfterSync],
  // 8 Russian and Kazakh, hostile strings
  ["languages", languages],
];

const env = environment();
const coord = coordinator(env);
const result = { ok: true, scenarios: {} };
for (const [name, scenario] of SCENARIOS) {
  if (env.only.length && !env.only.includes(name)) continue;
  const checks = new Checks();
  const start = process.hrtime.bigint();
  let phones = [];
  try {
    await scenario({ env, coord, checks, phones });
  } catch (err) {
    checks.fail(err.fatalCheck ? `stopped at a failed check` : "stopped by an error", `${err.message}${err.fatalCheck ? "" : `\n${err.stack}`}`);
  }
  for (const p of phones) {
    if (checks.failures.length && p.page && !p.page.isClosed()) {
      // What the phone showed when it failed, to read the failure by.
      const shot = `${env.shots}/failed-${name}-${p.name}.png`;
      await p.page.screenshot({ path: shot, fullPage: true, timeout: 5000 }).catch(() => {});
      const text = await p.page.evaluate(() => document.body?.innerText ?? "").catch((e) => `(no text: ${e.message})`);
      checks.step(`${p.name}: screen when it failed`, { url: p.page.url(), text: text.slice(0, 2000), screenshot: shot, console_errors: p.seen?.console_errors?.slice(-10) });
    }
    const problems = pageProblems(p.seen ?? { page_errors: [], csp_violations: [], dialogs: [] });
    if (problems.page_errors.length) checks.fail(`${p.name}: script errors in the page`, problems.page_errors);
    if (problems.csp_violations.length) checks.fail(`${p.name}: CSP violations`, problems.csp_violations);
    if (problems.dialogs.length) checks.fail(`${p.name}: dialogs opened`, problems.dialogs);
    await p.close();
  }
  const ok = checks.failures.length === 0;
  result.scenarios[name] = { ok, failures: checks.failures, steps: checks.steps, ms: Math.round(since(start)) };
  result.ok &&= ok;
  process.stderr.write(`phone scenario ${name}: ${ok ? "ok" : "FAILED"} (${Math.round(since(start))} ms)\n`);
}
console.log(JSON.stringify(result, null, 1));
process.exit(result.ok ? 0 : 1);
