// Per-group backoff after failed allocations: a stockout or a quota error
// usually lasts minutes, so asking again at once only adds load and noise.
import { backoffDelay, type BackoffOptions } from "../../core/backoff.js";
import type { GroupBackoff } from "./types.js";

/**
 * Delays between a group's failed allocations: 10 s after the first, doubling
 * to at most 10 min, less up to 20% jitter when a random source is given.
 */
export const ALLOCATION_BACKOFF: Readonly<Required<BackoffOptions>> = Object.freeze({ initialMs: 10_000, maxMs: 600_000, factor: 2, jitter: 0.2 });

/**
 * How long a group waits (ms) after `failures` failed allocations in a row
 * (≥ 1): `10 s · 2^(failures-1)`, capped at 10 min. Jitter, which keeps many
 * controllers from retrying in step, is applied only when `random` is given
 * (values in [0, 1)), so the result is deterministic without it.
 */
export function nextBackoff(failures: number, random?: () => number, policy: Readonly<Required<BackoffOptions>> = ALLOCATION_BACKOFF): number {
  const options = random ? policy : { ...policy, jitter: 0 };
  return backoffDelay(Math.max(0, failures - 1), options, random ?? (() => 0));
}

/**
 * A group's backoff after one more failed allocation at `now` (epoch ms);
 * `previous` is `undefined` for the first failure. `policy` replaces
 * {@link ALLOCATION_BACKOFF} (tests use shorter delays).
 */
export function backoffAfterFailure(
  previous: GroupBackoff | undefined,
  now: number,
  error: string,
  random?: () => number,
  policy: Readonly<Required<BackoffOptions>> = ALLOCATION_BACKOFF,
): GroupBackoff {
  const consecutiveFailures = (previous?.consecutiveFailures ?? 0) + 1;
  return { consecutiveFailures, nextAttemptAt: now + nextBackoff(consecutiveFailures, random, policy), lastError: error };
}
