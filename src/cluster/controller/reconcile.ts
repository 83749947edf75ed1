// Reconcile as a pure diff (like Nomad's reconciler): what a worker's answer
// changes in what the controller knows, and what a failed round means for
// the worker's health. The controller applies the result to its records.
import { FlusterError } from "../../core/errors.js";
import type { TaskState } from "../../core/status.js";
import type { WorkerHealth } from "./model.js";
import { isActiveAttempt, progressRank } from "./task-state.js";
import type { DesiredAttempt, ObservedAttempt } from "./worker-connection.js";

/** What the controller knows of one attempt it placed. */
export interface KnownAttempt {
  readonly attemptId: string;
  readonly workerId: string;
  readonly state: TaskState;
  /** Its worker has shown it has it (see AttemptRecord.delivered). @default true */
  readonly delivered?: boolean;
}

/** The changes in one worker's answer (reconcile or heartbeat). */
export interface ReconcileDiff {
  /** Attempts that moved on: assigned → building → running. */
  progressed: ObservedAttempt[];
  /** Attempts that ended on the worker. */
  ended: ObservedAttempt[];
  /** Attempts the worker should have and does not: they were lost with whatever ran them. */
  lost: KnownAttempt[];
  /** Attempts the worker reported for the first time: it has them (from now on, not having them is a loss). */
  delivered: KnownAttempt[];
  /**
   * Attempts the worker does not have and never had: their RunTask never
   * reached it (a controller that crashed before its answer came). Nothing
   * ran, so their tasks go back to pending at no cost.
   */
  undelivered: KnownAttempt[];
}

/** The desired set a worker is sent: every active attempt placed on it, with the state last seen. */
export function desiredSet(attempts: Iterable<KnownAttempt>): DesiredAttempt[] {
  const desired: DesiredAttempt[] = [];
  for (const a of attempts) desired.push({ attemptId: a.attemptId, knownState: a.state });
  return desired;
}

/**
 * Compares a worker's answer with what the controller knows. Reports about
 * attempts the controller does not know, that belong to another worker, or
 * that already ended are ignored (a late answer never revives an attempt);
 * active states only move forward. A missing attempt counts as lost only once
 * its worker showed it had it: one whose RunTask is still in flight
 * (`undispatched`) is left alone, as the worker may simply not have it yet;
 * one whose RunTask went out and was never answered (by a controller that
 * crashed since) is `undelivered`.
 */
export function diffReconcile(
  workerId: string,
  answer: { readonly observed: readonly ObservedAttempt[]; readonly missing: readonly string[] },
  known: (attemptId: string) => KnownAttempt | undefined,
  undispatched: ReadonlySet<string> = new Set(),
): ReconcileDiff {
  const diff: ReconcileDiff = { progressed: [], ended: [], lost: [], delivered: [], undelivered: [] };
  const mine = (id: string): KnownAttempt | undefined => {
    const attempt = known(id);
    return attempt !== undefined && attempt.workerId === workerId && isActiveAttempt(attempt.state) ? attempt : undefined;
  };
  for (const update of answer.observed) {
    const attempt = mine(update.attemptId);
    if (attempt?.delivered === false) diff.delivered.push(attempt);
    if (!attempt || update.state === attempt.state) continue;
    if (!isActiveAttempt(update.state)) diff.ended.push(update);
    else if (progressRank(update.state) > progressRank(attempt.state)) diff.progressed.push(update);
  }
  for (const id of answer.missing) {
    const attempt = undispatched.has(id) ? undefined : mine(id);
    if (attempt) (attempt.delivered === false ? diff.undelivered : diff.lost).push(attempt);
  }
  return diff;
}

export function isEmptyDiff(diff: ReconcileDiff): boolean {
  return diff.progressed.length === 0 && diff.ended.length === 0 && diff.lost.length === 0 && diff.delivered.length === 0 && diff.undelivered.length === 0;
}

/**
 * A worker's health as the controller sees it. Contact is what keeps a
 * worker: a reconcile it answered, a heartbeat it sent, its registration.
 */
export interface WorkerHealthState {
  health: WorkerHealth;
  /** When the controller last heard from the worker (its clock, ms). */
  lastContact: number;
  /**
   * When the controller first called the worker without hearing back since
   * (a call in flight, or one that failed); undefined when it has not asked
   * since the last contact. Only a worker that was asked can be silent.
   */
  askedSince?: number;
  /** Why the worker is unhealthy (a permanent failure), for `worker list`. */
  reason?: string;
}

/** What a failed call to a worker says about the worker. */
export type WorkerFailure =
  /** It could not be reached or did not answer in time: it may come back (grace period, then lost). */
  | { kind: "unreachable"; message: string }
  /**
   * It answered, and will refuse every call as things are set up: the
   * controller's token is not the one it wants, or the address is not a
   * Fluster worker. Retrying cannot help until someone fixes the setup.
   */
  | { kind: "misconfigured"; message: string }
  /** It turned this one request down (no room for the attempt now): ask again later. */
  | { kind: "refused"; message: string };

/** Sorts a failed call to a worker by what it means for the worker, from its error code (and, for protocol errors, its message). */
export function classifyWorkerFailure(err: unknown): WorkerFailure {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof FlusterError ? err.code : undefined;
  if (code === "unauthenticated") return { kind: "misconfigured", message: `it refused the controller's token (${message})` };
  if (code === "unimplemented") return { kind: "misconfigured", message: `it does not serve Fluster's WorkerService (${message})` };
  // An HTTP/1.1 server, a TLS server, or anything else that does not speak h2c.
  if (code === "internal" && /Protocol error|SSL routines|wrong version number|EPROTO/i.test(message)) {
    return { kind: "misconfigured", message: `it does not speak Fluster's protocol (${message})` };
  }
  if (code === "failed_precondition") return { kind: "refused", message };
  return { kind: "unreachable", message };
}

/**
 * Why a worker is lost at `now`, or undefined while it is not: it is lost
 * once the controller has had no contact with it for longer than `graceMs`,
 * whatever calls to it are still in flight (a call to a silent worker must
 * not hide the silence until its deadline). Checked on every tick, and after
 * every failed call.
 */
export function lostReason(worker: WorkerHealthState, now: number, graceMs: number): string | undefined {
  const silentFor = now - worker.lastContact;
  if (worker.askedSince === undefined || silentFor <= graceMs) return undefined;
  const seconds = Math.round(silentFor / 1000);
  if (worker.health === "unhealthy" && worker.reason) return `refused the controller for ${seconds}s: ${worker.reason}`;
  return `stopped answering for ${seconds}s`;
}

/**
 * A worker's health after a call that failed at `now`: unreachable at the
 * first transient failure, unhealthy (with the reason) at a permanent one,
 * and lost, either way, once it has been out of contact for longer than
 * `graceMs` (counted from the last contact, not from the first failure).
 */
export function healthAfterFailure(
  worker: WorkerHealthState,
  now: number,
  graceMs: number,
  failure: WorkerFailure = { kind: "unreachable", message: "no answer" },
): WorkerHealthState & { lostReason?: string } {
  const { lastContact } = worker;
  const askedSince = worker.askedSince ?? now;
  const next: WorkerHealthState =
    failure.kind === "misconfigured"
      ? { health: "unhealthy", lastContact, askedSince, reason: failure.message }
      : worker.health === "healthy"
        ? { health: "unreachable", lastContact, askedSince }
        : { ...worker, askedSince };
  const lost = lostReason(next, now, graceMs);
  return lost ? { ...next, health: "lost", lostReason: lost } : next;
}

/**
 * The deadline of one reconcile call: short next to the grace period (half
 * of it), so that a worker that stops answering is seen failing several
 * times before it is lost, and a stalled connection is dropped and opened
 * anew well within the grace; at most four intervals or 5 s, whichever is longer.
 */
export function reconcileDeadlineMs(intervalMs: number, graceMs: number): number {
  return Math.min(Math.max(intervalMs * 4, 5_000), graceMs / 2);
}
