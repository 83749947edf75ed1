// Attempts that say, on the shared disk, when they ran: a command for a job
// whose every attempt leaves a marker file, and the reader of those files.
// Partitioned hosts still write to the shared disk, so the markers show how
// long a cut-off attempt really ran, which the controller cannot know.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The file whose appearance in the results folder ends every marking attempt with exit 0. */
export const RELEASE_FILE = "release";

/**
 * A `node -e` program for a job's entrypoint (`[process.execPath, "-e",
 * MARKING_ATTEMPT]`, with `RESULTS=<folder>` in its environment). Each
 * attempt writes `<RESULTS>/<attempt id>.log`: `start <host> <ms>`, then
 * `alive <ms>` every 100 ms, until `<RESULTS>/release` appears (`end <ms>`,
 * exit 0) or SIGTERM comes (`term <ms>`, exit 143); it gives up after 90 s
 * (exit 3).
 */
export const MARKING_ATTEMPT = `
const fs = require("node:fs"), os = require("node:os"), path = require("node:path");
const dir = process.env.RESULTS;
const log = path.join(dir, process.env.FLUSTER_ATTEMPT_ID.replace(/[^A-Za-z0-9._-]/g, "_") + ".log");
const mark = (what) => fs.appendFileSync(log, what + " " + Date.now() + "\\n");
mark("start " + os.hostname());
const started = Date.now();
setInterval(() => {
  if (fs.existsSync(path.join(dir, ${JSON.stringify(RELEASE_FILE)}))) { mark("end"); process.exit(0); }
  if (Date.now() - started > 90000) process.exit(3);
  mark("alive");
}, 100);
process.on("SIGTERM", () => { mark("term"); process.exit(143); });
`;

/** What one attempt's marker file says; times are epoch milliseconds. */
export interface AttemptMarks {
  file: string;
  /** The host name it ran on. */
  host: string;
  start: number;
  /** Its last `alive` mark (0 before the first). */
  lastAlive: number;
  /** When SIGTERM reached it. */
  term?: number;
  /** When it finished after the release. */
  end?: number;
}

/** The marker files in `dir`, oldest start first. */
export function readMarks(dir: string): AttemptMarks[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".log"))
    .map((file) => {
      const marks: AttemptMarks = { file, host: "", start: 0, lastAlive: 0 };
      for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
        const [what, a, b] = line.split(" ");
        if (what === "start") [marks.host, marks.start] = [String(a), Number(b)];
        if (what === "alive") marks.lastAlive = Number(a);
        if (what === "term") marks.term = Number(a);
        if (what === "end") marks.end = Number(a);
      }
      return marks;
    })
    .sort((x, y) => x.start - y.start);
}
