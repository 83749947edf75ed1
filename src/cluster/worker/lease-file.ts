// The lease deadline as a file the worker daemon writes and its lease
// supervisor reads: a fixed-width number of milliseconds on the machine's
// monotonic clock, overwritten in place, so that a reader in another process
// always sees the latest deadline the daemon has granted itself.
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";

/** Milliseconds on CLOCK_MONOTONIC: the same clock in every process of the machine, never moved by wall-clock changes. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** Characters of one record: `D` + 20 digits of thousandths of a ms + newline. */
const RECORD_LENGTH = 22;

function record(deadlineMs: number): string {
  const micros = Math.max(0, Math.round(deadlineMs * 1000));
  return `D${String(micros).padStart(20, "0")}\n`;
}

/**
 * The daemon's side: each renewal overwrites the deadline in place (one
 * 22-byte pwrite at offset 0, no truncation, so a reader never sees the file
 * empty).
 */
export class LeaseFileWriter {
  private fd: number | undefined;
  private last = -Infinity;

  constructor(readonly path: string) {
    this.fd = openSync(path, "w", 0o600);
    // No lease yet: a deadline of 0 has passed and fences nothing (nothing runs before the first grant).
    writeSync(this.fd, record(0), 0);
  }

  /** Moves the deadline to `deadlineMs` (monotonic ms); never backwards. */
  renew(deadlineMs: number): void {
    if (this.fd === undefined || deadlineMs <= this.last) return;
    this.last = deadlineMs;
    writeSync(this.fd, record(deadlineMs), 0);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * The supervisor's side: the deadline now in the file (monotonic ms), 0 when
 * none was granted yet, undefined when the file is missing or holds no
 * complete record (read again later).
 */
export function readLeaseDeadline(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, "latin1");
  } catch {
    return undefined;
  }
  if (text.length < RECORD_LENGTH || !/^D\d{20}\n/.test(text)) return undefined;
  return Number(text.slice(1, 21)) / 1000;
}
