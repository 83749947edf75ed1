// Attempts that log when they run: a bash task that appends its attempt id
// and a timestamp to a file per task at start, every 100 ms while it runs,
// and at its end; and the check that no task ever had two attempts running
// at one instant (the intervals of its attempts never overlap).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";

/**
 * A command entrypoint that runs for `seconds` and logs into
 * `<dir>/<job id>.<task index>` lines `<attempt id> start|tick|end <epoch µs>`.
 * A killed attempt's last line is a tick at most ~100 ms before it died.
 */
export function loggingTask(dir: string, seconds: number): Entrypoint {
  if (!Number.isInteger(seconds) || seconds < 0) throw new Error(`loggingTask: seconds must be a whole number, got ${seconds}`);
  // Bash builtins only ($EPOCHREALTIME, arithmetic): one fork per tick (sleep).
  const script = [
    'f="$1/$FLUSTER_JOB_ID.$FLUSTER_TASK_INDEX"',
    't=$EPOCHREALTIME; echo "$FLUSTER_ATTEMPT_ID start ${t/./}" >> "$f"',
    "end=$(( ${t/./} + $2 * 1000000 ))",
    'while t=$EPOCHREALTIME; (( ${t/./} < end )); do echo "$FLUSTER_ATTEMPT_ID tick ${t/./}" >> "$f"; sleep 0.1; done',
    't=$EPOCHREALTIME; echo "$FLUSTER_ATTEMPT_ID end ${t/./}" >> "$f"',
  ].join("\n");
  return Entrypoint.fromCommand(["bash", "-c", script, "logging-task", dir, String(seconds)]);
}

/** When one attempt was seen running (epoch ms): from its start line to its last line. */
export interface AttemptInterval {
  attemptId: string;
  startMs: number;
  lastMs: number;
  /** It wrote its end line (ran to completion). */
  completed: boolean;
}

/** The attempts of each task (`<job id>.<task index>`), in order of start. */
export function readAttemptIntervals(dir: string): Map<string, AttemptInterval[]> {
  const tasks = new Map<string, AttemptInterval[]>();
  for (const name of readdirSync(dir)) {
    const attempts = new Map<string, AttemptInterval>();
    for (const line of readFileSync(join(dir, name), "utf8").split("\n")) {
      const [attemptId, kind, micros] = line.split(" ");
      if (!attemptId || !kind || !micros) continue;
      const ms = Number(micros) / 1000;
      const a = attempts.get(attemptId) ?? { attemptId, startMs: ms, lastMs: ms, completed: false };
      a.startMs = Math.min(a.startMs, ms);
      a.lastMs = Math.max(a.lastMs, ms);
      if (kind === "end") a.completed = true;
      attempts.set(attemptId, a);
    }
    tasks.set(name, [...attempts.values()].sort((x, y) => x.startMs - y.startMs));
  }
  return tasks;
}

/** The longest time two attempts of one task ran at once (0: never), and the gaps between one attempt's last sign of life and the next one's start. */
export function overlapReport(tasks: Map<string, AttemptInterval[]>): { maxOverlapMs: number; overlaps: string[]; gapsMs: number[] } {
  let maxOverlapMs = 0;
  const overlaps: string[] = [];
  const gapsMs: number[] = [];
  for (const [task, attempts] of tasks) {
    for (let i = 1; i < attempts.length; i++) {
      const next = attempts[i]!;
      // Against every earlier attempt, not only the previous one.
      const latestEnd = Math.max(...attempts.slice(0, i).map((a) => a.lastMs));
      const overlap = latestEnd - next.startMs;
      if (overlap > 0) {
        maxOverlapMs = Math.max(maxOverlapMs, overlap);
        overlaps.push(`${task}: ${next.attemptId} started ${overlap.toFixed(0)} ms before an earlier attempt's last sign of life`);
      } else {
        gapsMs.push(-overlap);
      }
    }
  }
  return { maxOverlapMs, overlaps, gapsMs };
}
