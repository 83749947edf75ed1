// A real headless Chromium for the dashboard's tests (playwright-core drives
// the system's browser; it downloads none). FLUSTER_CHROMIUM names another
// binary. A missing browser fails the test with how to install one, never a skip.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Where Chromium is looked for when FLUSTER_CHROMIUM is unset. */
export const DEFAULT_CHROMIUM = "/usr/bin/chromium";

/** The Chromium binary the tests use: FLUSTER_CHROMIUM, else {@link DEFAULT_CHROMIUM}. */
export function chromiumPath(): string {
  return process.env["FLUSTER_CHROMIUM"] || DEFAULT_CHROMIUM;
}

/** Launches headless Chromium; throws an error saying how to get one when it is missing. */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) {
    throw new Error(
      `the dashboard tests need Chromium at ${executablePath}: install it (\`apt-get install chromium\` on Debian/Ubuntu) or set FLUSTER_CHROMIUM to a Chromium or Chrome binary`,
    );
  }
  return chromium.launch({ executablePath, headless: true, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
}
