// The lease supervisor process: one per worker daemon, outside the daemon's
// event loop, so that a daemon that is stopped (SIGSTOP), hung or starved
// still has its attempts killed when its lease runs out. It reads the
// deadline the daemon writes to the lease file, and SIGKILLs every attempt
// group the daemon recorded once the deadline has passed; when the daemon
// dies (its stdin closes) it kills them at once and exits. Started by
// lease-supervisor.ts with its settings as JSON in argv[2].
import { fenceRecordedGroups } from "./process-group.js";
import { monotonicMs, readLeaseDeadline } from "./lease-file.js";

interface SupervisorSettings {
  leaseFile: string;
  attemptsDir: string;
  daemonPid: number;
  checkEveryMs: number;
}

const settings = JSON.parse(process.argv[2] ?? "{}") as SupervisorSettings;
/** The deadline the last fence was for, and the attempts killed for it (a later check kills only newcomers). */
let fencedDeadline = 0;
const killedForDeadline = new Set<string>();

// The daemon reads these lines while it lives; once it is gone nobody does,
// and a write to the closed pipe must not end the supervisor before it fences.
process.stdout.on("error", () => undefined);

function say(line: string): void {
  if (process.stdout.writable) process.stdout.write(`${line}\n`);
}

function fence(reason: string): void {
  const killed = fenceRecordedGroups(settings.attemptsDir, settings.daemonPid, reason, killedForDeadline);
  for (const id of killed) killedForDeadline.add(id);
  if (killed.length > 0) say(`fenced ${killed.length} attempt(s): ${reason}`);
}

function check(): void {
  const deadline = readLeaseDeadline(settings.leaseFile);
  // Missing, torn, or 0 (no lease granted yet): nothing to enforce.
  if (!deadline) return;
  const now = monotonicMs();
  if (now <= deadline) return;
  if (deadline !== fencedDeadline) {
    fencedDeadline = deadline;
    killedForDeadline.clear();
  }
  fence(`fenced: the worker's lease ran out ${((now - deadline) / 1000).toFixed(1)}s ago and its daemon did not renew it`);
}

const timer = setInterval(check, settings.checkEveryMs);
// The daemon died (its end of the pipe closed): nobody renews the lease or reaps its attempts.
const daemonGone = () => {
  clearInterval(timer);
  fence("fenced: the worker daemon died");
  process.exit(0);
};
process.stdin.on("end", daemonGone);
process.stdin.on("close", daemonGone);
process.stdin.on("error", daemonGone);
process.stdin.resume();
// Signals aimed at the daemon's terminal do not reach this process (it leads its own group); a direct SIGTERM ends it.
process.on("SIGTERM", () => process.exit(0));
say("fluster-lease-supervisor-ready");
