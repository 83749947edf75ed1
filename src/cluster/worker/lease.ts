// The worker's lease (Kubernetes node leases, Nomad heartbeat TTLs): the
// worker holds its attempts only while it keeps in contact with the
// controller. Cut off for longer than its fence period L, it kills them all
// itself, before the controller declares it lost and runs them elsewhere, so
// a task never runs twice at once. Two enforce it: the daemon (SIGTERM at L,
// when its event loop runs) and its lease supervisor, a process of its own
// (SIGKILL at the hard fence, L + min(margin/2, 0.5 s), even while the daemon
// is stopped or hung; lease-supervisor.ts). Pure bookkeeping with an injected
// clock; the daemon owns the timer, the heartbeats and the kills.
import { FlusterError } from "../../core/errors.js";

/** How a worker keeps its lease, derived from the controller's settings. */
export interface LeaseTerms {
  /** The controller's grace: no contact for this long and it declares the worker lost. */
  readonly graceMs: number;
  /** No acknowledged exchange for this long and the worker fences its attempts (strictly less than the grace). */
  readonly fenceAfterMs: number;
  /** How often the worker renews (an empty heartbeat, or one with state changes). */
  readonly renewEveryMs: number;
  /** How often the lease is checked (fencing is at most this late). */
  readonly checkEveryMs: number;
  /**
   * No acknowledged exchange for this long and the lease supervisor, a
   * process outside the daemon, SIGKILLs every attempt, whatever state the
   * daemon is in (stopped, hung): `fenceAfterMs + min(margin/2, 500 ms)`.
   * The daemon's own fence (SIGTERM first) comes first when it can act.
   */
  readonly hardFenceAfterMs: number;
}

/**
 * The lease for a controller whose grace is `graceMs`. The worker fences
 * after `grace − margin`, with margin = max(grace/4, min(1 s, grace/2))
 * (2 s grace: fence after 1 s; 10 s: after 7.5 s).
 *
 * Why this is safe: the worker dates each renewal by when it *sent* it and
 * counts it only once the controller acknowledged it; the controller dates
 * contact by when it *received* the heartbeat (or an answer to its own
 * call). So the worker's last renewal is never later than the controller's
 * last contact, and the worker's deadline (last renewal + fence period)
 * comes at least `margin` before the controller's (last contact + grace).
 * The margin absorbs what happens in between: the lease check runs every
 * `checkEveryMs` (≤ 250 ms), the kill signal must be delivered, the event
 * loops of both may lag, and the two clocks may run at slightly different
 * rates. A Reconcile the worker answered is not counted: its answer may be
 * lost on the way back, and then the controller never counted it.
 *
 * A controller that is slow but answering never causes a fence as long as
 * it acknowledges a heartbeat within `fenceAfterMs − renewEveryMs` of its
 * sending (¾ of the fence period).
 */
export function leaseTerms(graceMs: number): LeaseTerms {
  if (!Number.isFinite(graceMs) || graceMs <= 0) throw new FlusterError(`the controller's grace must be positive, got ${graceMs} ms`, "invalid_argument");
  const marginMs = Math.max(graceMs / 4, Math.min(1_000, graceMs / 2));
  const fenceAfterMs = graceMs - marginMs;
  const renewEveryMs = fenceAfterMs / 4;
  const hardFenceAfterMs = fenceAfterMs + Math.min(marginMs / 2, 500);
  return { graceMs, fenceAfterMs, renewEveryMs, checkEveryMs: Math.min(renewEveryMs, 250), hardFenceAfterMs };
}

/** What the lease asks of its holder at a check. */
export interface LeaseStep {
  /** Send a renewal now (the last one went out `renewEveryMs` ago or more). */
  renew: boolean;
  /** The lease just expired: kill every attempt; `silentMs` since the last acknowledged exchange. */
  fence?: { silentMs: number };
}

/**
 * Lifecycle: `held` (renewed within the fence period) → `fenced` (expired:
 * the attempts were killed) → `held` again at the next acknowledged
 * exchange. `forgotten()` (the controller does not know the worker) fences
 * at once; a registration acknowledged renews.
 */
export class WorkerLease {
  private renewedAtValue: number;
  private lastSentAt = -Infinity;
  private fencedValue = false;

  constructor(
    private termsValue: LeaseTerms,
    private readonly now: () => number,
    /** When the exchange that started the lease (the registration) was sent. */
    startedAt: number,
  ) {
    this.renewedAtValue = startedAt;
  }

  get terms(): LeaseTerms {
    return this.termsValue;
  }

  get fenced(): boolean {
    return this.fencedValue;
  }

  /** When the last acknowledged exchange was sent (the lease runs from there). */
  get renewedAt(): number {
    return this.renewedAtValue;
  }

  /** Whether the fence period has passed since the last acknowledged exchange (fenced or about to be). */
  expired(): boolean {
    return this.fencedValue || this.now() - this.renewedAtValue > this.termsValue.fenceAfterMs;
  }

  /** How long since the last acknowledged exchange was sent. */
  silentMs(): number {
    return this.now() - this.renewedAtValue;
  }

  /** One check: whether to send a renewal, and whether the lease expired just now. */
  step(): LeaseStep {
    const now = this.now();
    const step: LeaseStep = { renew: now - this.lastSentAt >= this.termsValue.renewEveryMs };
    if (step.renew) this.lastSentAt = now;
    if (!this.fencedValue && now - this.renewedAtValue > this.termsValue.fenceAfterMs) {
      this.fencedValue = true;
      step.fence = { silentMs: now - this.renewedAtValue };
    }
    return step;
  }

  /** An exchange sent at `sentAt` was sent (counts toward pacing renewals). */
  sent(sentAt: number): void {
    this.lastSentAt = Math.max(this.lastSentAt, sentAt);
  }

  /**
   * The controller acknowledged an exchange sent at `sentAt` and knows this
   * worker (a heartbeat answered `known`, a registration accepted). Returns
   * true when this ends a fence (contact is back).
   */
  acknowledged(sentAt: number, terms?: LeaseTerms): boolean {
    if (terms) this.termsValue = terms;
    this.renewedAtValue = Math.max(this.renewedAtValue, sentAt);
    if (!this.fencedValue || this.now() - this.renewedAtValue > this.termsValue.fenceAfterMs) return false;
    this.fencedValue = false;
    return true;
  }

  /** The controller answered that it does not know this worker: it was lost, and its attempts retried. Returns true when this fences now. */
  forgotten(): boolean {
    if (this.fencedValue) return false;
    this.fencedValue = true;
    return true;
  }
}
