// The web dashboard in a real headless Chromium against a real LocalCluster:
// pages list what the Connect API says, update live (no reload), tail a
// running job's logs, and show nothing but the sign-in view without the token.
//
// Each page's screenshot lands in test-output/dashboard/. The README's
// screenshot, docs/images/dashboard-jobs.png, is rewritten by this test only
// when FLUSTER_UPDATE_SCREENSHOTS=1:
//   FLUSTER_UPDATE_SCREENSHOTS=1 npm test -- test/dashboard/dashboard.test.ts
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page, Route } from "playwright-core";
import { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest } from "../../src/core/job.js";
import { launchBrowser } from "../helpers/browser.js";
import { eventually, REPO_ROOT } from "../helpers/index.js";

const SCREENSHOTS = join(REPO_ROOT, "test-output", "dashboard");
const README_SCREENSHOT = join(REPO_ROOT, "docs", "images", "dashboard-jobs.png");
/** How long the page may take to show what the cluster did. */
const SHOWN_MS = 30_000;

const shell = (name: string, script: string): JobRequest => ({
  name,
  resources: { cpu: 0.25, memory: "64m" },
  entrypoint: Entrypoint.fromCommand(["sh", "-c", script]),
});

/** A marker set in the page: it survives only while the page is never reloaded. */
async function markPage(page: Page): Promise<void> {
  await page.evaluate(() => {
    (globalThis as unknown as { flusterMarker?: string }).flusterMarker = "no reload";
  });
}

async function assertNotReloaded(page: Page): Promise<void> {
  assert.equal(await page.evaluate(() => (globalThis as unknown as { flusterMarker?: string }).flusterMarker), "no reload", "the page was reloaded or navigated away");
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** The text of the page's <main>. */
async function mainText(page: Page): Promise<string> {
  return (await page.locator("main").textContent()) ?? "";
}

let browser: Browser | undefined;
before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** A fresh browser context (its own sessionStorage) with one page at `url`. */
async function openPage(url: string): Promise<{ context: BrowserContext; page: Page }> {
  if (!browser) throw new Error("the browser is not launched");
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.goto(url);
  return { context, page };
}

describe("dashboard: pages and live updates", { timeout: 120_000 }, () => {
  let cluster: LocalCluster;
  let context: BrowserContext;
  let page: Page;
  let scratch: string;
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), "fluster-dashboard-"));
    cluster = await LocalCluster.start({ workers: 2, workerCpu: 2, workerMemory: "1g" });
    // The controller serves dist/dashboard/, which `npm test` builds; a bare `node --test` may find none.
    const script = await fetch(`${cluster.server.url}/assets/app.js`);
    assert.equal(script.status, 200, `the dashboard is not built (${script.status}: ${await script.text()})`);
    ({ context, page } = await openPage(`${cluster.server.url}/#/jobs`));
  });
  after(async () => {
    await context?.close();
    await cluster?.shutdown();
    rmSync(scratch, { recursive: true, force: true });
  });

  test("the jobs page lists a job launched after it opened, and shows it succeed without a reload", async () => {
    await page.goto(`${cluster.server.url}/#/jobs`);
    await page.getByTestId("feed").filter({ hasText: "live" }).waitFor({ timeout: SHOWN_MS });
    await markPage(page);
    const jobId = await cluster.launch(shell("dash-hello", "echo hello"));
    const row = page.locator(`tr[data-job-id="${jobId}"]`);
    await row.locator(".badge", { hasText: "succeeded" }).waitFor({ timeout: SHOWN_MS });
    assert.match((await row.textContent()) ?? "", /dash-hello.*default.*1\/1 succeeded/s);
    // The state filter asks the controller for failed jobs only: the row goes.
    await page.getByLabel("State").selectOption({ label: "failed" });
    await row.waitFor({ state: "detached", timeout: SHOWN_MS });
    await page.getByLabel("State").selectOption({ label: "all" });
    await row.waitFor({ timeout: SHOWN_MS });
    await assertNotReloaded(page);
    await screenshot(page, "jobs");
  });

  test("the live feed shows that it reconnects, and updates again after, without a reload", async () => {
    // Every WatchCluster call fails (as when the controller is unreachable) until the route is removed.
    const refuseFeed = (route: Route) => route.abort("connectionrefused");
    await page.route(/\/WatchCluster$/, refuseFeed);
    const feed = page.getByTestId("feed");
    try {
      await page.goto(`${cluster.server.url}/#/workers`);
      await page.reload();
      await markPage(page);
      await feed.filter({ hasText: "reconnecting…" }).waitFor({ timeout: SHOWN_MS });
    } finally {
      await page.unroute(/\/WatchCluster$/, refuseFeed);
    }
    await feed.filter({ hasText: "live" }).waitFor({ timeout: SHOWN_MS });
    await page.getByRole("link", { name: "Jobs" }).click();
    const jobId = await cluster.launch(shell("dash-after-reconnect", "echo back"));
    await page.locator(`tr[data-job-id="${jobId}"] .badge`, { hasText: "succeeded" }).waitFor({ timeout: SHOWN_MS });
    await assertNotReloaded(page);
  });

  test("a job page shows a running job's log lines as they are printed", async () => {
    const go = join(scratch, "go");
    const stop = join(scratch, "stop");
    // Prints a line, waits for the test, prints another, waits again (each wait bounded to 60 s).
    const waitFor = (file: string) => `i=0; while [ ! -e '${file}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`;
    const jobId = await cluster.launch(shell("dash-logs", `echo first-line; ${waitFor(go)}; echo second-line; ${waitFor(stop)}`));
    // The log stream's first call fails (as when the connection drops): the tail opens it again.
    let streamCalls = 0;
    const failFirst = (route: Route) => (++streamCalls === 1 ? route.abort("connectionreset") : route.continue());
    await page.route(/\/StreamJobLogs$/, failFirst);
    try {
      await page.goto(`${cluster.server.url}/#/jobs/${jobId}`);
      await markPage(page);
      const logs = page.getByTestId("logs");
      await logs.filter({ hasText: "first-line" }).waitFor({ timeout: SHOWN_MS });
      assert.ok(streamCalls >= 2, `the tail opened the log stream again after it failed (${streamCalls} calls)`);
      assert.doesNotMatch((await logs.textContent()) ?? "", /second-line/, "the second line shows before it is printed");
      writeFileSync(go, "");
      await logs.filter({ hasText: "second-line" }).waitFor({ timeout: SHOWN_MS });
      assert.equal(((await logs.textContent()) ?? "").match(/first-line/g)?.length, 1, "each line shows once");
      assert.equal((await cluster.poll(jobId)).status, "running", "the job still runs when its second line shows");
      await page.locator("h1 + .badge", { hasText: "running" }).waitFor({ timeout: SHOWN_MS });
      await screenshot(page, "job-running");
      writeFileSync(stop, "");
      await page.locator("h1 + .badge", { hasText: "succeeded" }).waitFor({ timeout: SHOWN_MS });
      await page.getByText("end of log").waitFor({ timeout: SHOWN_MS });
      await assertNotReloaded(page);
    } finally {
      writeFileSync(stop, "");
      await page.unroute(/\/StreamJobLogs$/, failFirst);
    }
  });

  test("a failed job shows its exit code and error", async () => {
    const jobId = await cluster.launch(shell("dash-fails", "echo 'the disk is on fire' >&2; exit 3"));
    await page.goto(`${cluster.server.url}/#/jobs/${jobId}`);
    const error = page.getByTestId("job-error");
    await error.waitFor({ timeout: SHOWN_MS });
    const text = (await error.textContent()) ?? "";
    assert.match(text, /exit code 3/);
    assert.match(text, /exited with code 3/);
    assert.match(text, /the disk is on fire/);
    await page.locator("h1 + .badge", { hasText: "failed" }).waitFor({ timeout: SHOWN_MS });
    await screenshot(page, "job-failed");
  });

  test("a job that cannot be placed shows why it waits", async () => {
    const jobId = await cluster.launch({ ...shell("dash-too-big", "echo never"), resources: { cpu: 64, memory: "64m" } });
    try {
      let reason = "";
      await eventually(async () => (reason = (await cluster.poll(jobId)).pendingReason ?? "") !== "", { what: "the job's pending reason", timeoutMs: SHOWN_MS });
      await page.goto(`${cluster.server.url}/#/jobs`);
      const row = page.locator(`tr[data-job-id="${jobId}"]`);
      await row.locator("td.reason", { hasText: reason }).waitFor({ timeout: SHOWN_MS });
      await page.goto(`${cluster.server.url}/#/jobs/${jobId}`);
      await page.locator("p.reason", { hasText: reason }).waitFor({ timeout: SHOWN_MS });
    } finally {
      await cluster.terminate(jobId);
    }
  });

  test("the stop button terminates a running job", async () => {
    const jobId = await cluster.launch(shell("dash-stoppable", "sleep 60"));
    try {
      await page.goto(`${cluster.server.url}/#/jobs/${jobId}`);
      await page.locator("h1 + .badge", { hasText: "running" }).waitFor({ timeout: SHOWN_MS });
      page.once("dialog", (dialog) => void dialog.accept());
      await page.getByRole("button", { name: "stop job" }).click();
      await page.locator("h1 + .badge", { hasText: "killed" }).waitFor({ timeout: SHOWN_MS });
      assert.equal((await cluster.poll(jobId)).status, "killed");
      assert.equal(await page.getByRole("button", { name: "stop job" }).count(), 0, "a finished job has no stop button");
    } finally {
      await cluster.terminate(jobId).catch(() => undefined);
    }
  });

  test("an unknown job's page names the RPC that failed", async () => {
    await page.goto(`${cluster.server.url}/#/jobs/no-such-job`);
    await page.getByRole("alert").filter({ hasText: "GetJobStatus failed" }).first().waitFor({ timeout: SHOWN_MS });
    assert.match(await mainText(page), /GetJobStatus failed \(NotFound\)/);
  });

  test("the workers page shows both workers, healthy, with their last heartbeat", async () => {
    await page.goto(`${cluster.server.url}/#/workers`);
    for (const worker of cluster.workers) {
      const row = page.locator(`tr[data-worker-id="${worker.workerId}"]`);
      await row.locator(".badge", { hasText: "healthy" }).waitFor({ timeout: SHOWN_MS });
      const text = (await row.textContent()) ?? "";
      assert.ok(text.includes(worker.address), `the row shows ${worker.address}: ${text}`);
      assert.match(text, /cpu.*\/ 2/s);
      assert.match(text, /just now|ago/);
    }
    assert.equal(await page.locator("tr[data-worker-id]").count(), 2);
    await screenshot(page, "workers");
  });

  test("the groups, reservations and endpoints pages show a group, a reservation and an endpoint", async () => {
    const { groupId, jobIds } = await cluster.launchGroupWithId([shell("dash-group-a", "echo a"), shell("dash-group-b", "echo b")], { name: "dash-group" });
    const reservationId = await cluster.createReservation({ minResources: { cpu: 0.5, memory: "64m", replicas: 1 }, maxResources: { cpu: 0.5, memory: "64m", replicas: 1 }, ttlSeconds: 600 });
    const endpointId = await cluster.registerEndpoint("dash-endpoint", "http://127.0.0.1:9/dash", { metadata: { role: "dash-metadata" }, ttlSeconds: 600 });
    try {
      await page.goto(`${cluster.server.url}/#/groups`);
      const group = page.locator("tr", { hasText: groupId });
      await group.waitFor({ timeout: SHOWN_MS });
      await group.locator(".badge", { hasText: "succeeded" }).waitFor({ timeout: SHOWN_MS });
      for (const jobId of jobIds) assert.ok(((await group.textContent()) ?? "").includes(jobId), `the group's row lists ${jobId}`);
      assert.ok(((await group.textContent()) ?? "").includes("dash-group"));
      await screenshot(page, "groups");

      await page.getByRole("link", { name: "Reservations" }).click();
      const reservation = page.locator("tr", { hasText: reservationId });
      await reservation.locator(".badge", { hasText: "active" }).waitFor({ timeout: SHOWN_MS });
      await reservation.getByText("1 held").waitFor({ timeout: SHOWN_MS });
      await screenshot(page, "reservations");

      await page.getByRole("link", { name: "Endpoints" }).click();
      const endpoint = page.locator("tr", { hasText: "dash-endpoint" });
      await endpoint.waitFor({ timeout: SHOWN_MS });
      const text = (await endpoint.textContent()) ?? "";
      assert.match(text, /http:\/\/127\.0\.0\.1:9\/dash/);
      assert.match(text, /role=dash-metadata/);
      await page.getByRole("heading", { name: "Namespace default" }).waitFor({ timeout: SHOWN_MS });
      await screenshot(page, "endpoints");
      // Live: the released reservation leaves its page without a reload.
      await page.getByRole("link", { name: "Reservations" }).click();
      await reservation.waitFor({ timeout: SHOWN_MS });
      await markPage(page);
      await cluster.releaseReservation(reservationId);
      await reservation.waitFor({ state: "detached", timeout: SHOWN_MS });
      await assertNotReloaded(page);
    } finally {
      await cluster.unregisterEndpoint(endpointId);
      await cluster.releaseReservation(reservationId).catch(() => undefined);
    }
  });

  test("the jobs page lists every job of this suite, finished ones with their states", async () => {
    const jobs = await cluster.listJobs();
    assert.ok(jobs.length > 0, "the suite's jobs are listed by the controller");
    await page.goto(`${cluster.server.url}/#/jobs`);
    for (const job of jobs) await page.locator(`tr[data-job-id="${job.jobId}"] .badge`, { hasText: job.status }).waitFor({ timeout: SHOWN_MS });
    assert.equal(await page.locator("tr[data-job-id]").count(), jobs.length);
    // The name filter asks the controller for names with the prefix only.
    await page.getByLabel("Name prefix").fill("dash-group-");
    await page.locator("tr[data-job-id]", { hasText: "dash-hello" }).waitFor({ state: "detached", timeout: SHOWN_MS });
    assert.equal(await page.locator("tr[data-job-id]").count(), 2);
    await page.getByLabel("Name prefix").fill("");
    await page.locator("tr[data-job-id]", { hasText: "dash-hello" }).waitFor({ timeout: SHOWN_MS });
    // A running job too, for the picture; stopped before the test ends.
    const running = await cluster.launch({ ...shell("dash-train", "sleep 60"), resources: { cpu: 1, memory: "256m", replicas: 2 } });
    try {
      await page.locator(`tr[data-job-id="${running}"] .badge`, { hasText: "running" }).waitFor({ timeout: SHOWN_MS });
      await page.getByLabel("Name prefix").blur();
      await page.mouse.move(0, 0);
      await screenshot(page, "jobs-all");
      // The README's picture; rewritten only on request, so that test runs never change the tree.
      if (process.env["FLUSTER_UPDATE_SCREENSHOTS"] === "1") {
        mkdirSync(join(README_SCREENSHOT, ".."), { recursive: true });
        await page.screenshot({ path: README_SCREENSHOT });
      }
    } finally {
      await cluster.terminate(running);
    }
  });
});

describe("dashboard: a controller with a token", { timeout: 120_000 }, () => {
  const TOKEN = "dashboard-test-token-0123456789";
  let cluster: LocalCluster;
  let jobId: string;
  before(async () => {
    cluster = await LocalCluster.start({ workers: 1, workerCpu: 1, workerMemory: "512m", token: TOKEN });
    jobId = await cluster.launch(shell("secret-job-name", "echo hi"));
  });
  after(async () => {
    await cluster?.shutdown();
  });

  /** The page shows no job data: neither the job's name nor its id is in the DOM. */
  async function assertNoJobData(page: Page): Promise<void> {
    const html = await page.content();
    assert.ok(!html.includes("secret-job-name"), "the job's name is in the page");
    assert.ok(!html.includes(jobId), "the job's id is in the page");
  }

  test("no token gets the sign-in view, a wrong one the refusal, the right one the data", async () => {
    const { context, page } = await openPage(`${cluster.server.url}/#/jobs`);
    try {
      const signIn = page.getByTestId("sign-in");
      await signIn.waitFor({ timeout: SHOWN_MS });
      assert.match((await signIn.textContent()) ?? "", /requires a token/);
      await assertNoJobData(page);
      await screenshot(page, "sign-in");

      await page.getByLabel("Token").fill("not-the-token");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByTestId("refused").waitFor({ timeout: SHOWN_MS });
      assert.match((await page.getByTestId("refused").textContent()) ?? "", /refused/);
      await signIn.waitFor({ timeout: SHOWN_MS });
      await assertNoJobData(page);
      await screenshot(page, "sign-in-refused");

      await page.getByLabel("Token").fill(TOKEN);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator(`tr[data-job-id="${jobId}"]`).filter({ hasText: "secret-job-name" }).waitFor({ timeout: SHOWN_MS });
      assert.equal(await page.getByTestId("sign-in").count(), 0);

      await page.getByRole("link", { name: "sign out" }).click();
      await signIn.waitFor({ timeout: SHOWN_MS });
      await assertNoJobData(page);
    } finally {
      await context.close();
    }
  });
});
