// The fault mode of the FAKE object stores (s3-fake.ts, gcs-fake.ts): which
// requests to answer with a throttling or unavailable status instead of
// serving them, and how many were answered so, so a test proves its client
// retried them.

/** Which requests fail: the next `next` ones, or every `every`-th one; with `status`. */
export interface FaultPlan {
  /** Fail the next this many requests. */
  next?: number;
  /** Fail every this-many-th request (counted from when the plan was set), until cleared. */
  every?: number;
  /** The status to answer with. @default 503 */
  status?: 429 | 500 | 503;
}

export class FaultInjector {
  /** Requests answered with a fault, since the fake started. */
  served = 0;
  /** Requests seen, since the fake started. */
  requests = 0;
  private plan: FaultPlan = {};
  private sincePlan = 0;

  /** Replaces the plan; `{}` clears it. */
  set(plan: FaultPlan): void {
    this.plan = { ...plan };
    this.sincePlan = 0;
  }

  /** Counts a request; the status to fail it with, or undefined to serve it. */
  next(): number | undefined {
    this.requests += 1;
    this.sincePlan += 1;
    const status = this.plan.status ?? 503;
    if (this.plan.next !== undefined && this.plan.next > 0) {
      this.plan.next -= 1;
      this.served += 1;
      return status;
    }
    if (this.plan.every !== undefined && this.sincePlan % this.plan.every === 0) {
      this.served += 1;
      return status;
    }
    return undefined;
  }
}
