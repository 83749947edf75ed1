// Shard retries: which errors are worth another attempt (transient ones:
// an unavailable service, a reset connection, throttling, a 5xx answer),
// and running a shard again with backoff until it succeeds or its attempts
// run out. A shard's error from a worker thread or a cluster worker arrives
// rebuilt by the codec (name, message, code and other fields, but not its
// class) and, from a pool worker, wrapped in an ActorError whose cause it
// is: the classification reads fields and walks the cause chain, so it
// answers the same on every backend.
import { ERROR_BRAND, FlusterError, type FlusterErrorCode } from "../core/errors.js";
import { retry, type BackoffOptions } from "../core/backoff.js";

/**
 * Thrown by a pipeline's own code to say "this failure is transient, run
 * the shard again" (a flaky service, a rate limit); execute() retries the
 * shard up to `maxShardRetries` times. Its code is `unavailable`.
 */
export class RetryableError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.RetryableError";
  override name = "RetryableError";

  constructor(message: string, options?: ErrorOptions) {
    super(message, "unavailable", options);
  }
}

/** Codes of transient failures: Fluster's own, Node's network and I/O errnos, undici's socket errors. */
const RETRYABLE_CODES = new Set([
  "unavailable",
  "deadline_exceeded",
  "resource_exhausted",
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTUNREACH",
  "EBUSY",
  "EMFILE",
  "ENFILE",
  "EIO",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/** Fluster codes that say another attempt would fail the same way. */
const FINAL_FLUSTER_CODES: ReadonlySet<string> = new Set<FlusterErrorCode>([
  "invalid_argument",
  "not_found",
  "already_exists",
  "cancelled",
  "permission_denied",
  "unauthenticated",
  "unimplemented",
]);

/** Node's codes of the same: an abort, a missing file, a refused permission. */
const FINAL_SYSTEM_CODES = new Set(["ABORT_ERR", "ENOENT", "EACCES", "EPERM", "EISDIR", "ENOTDIR"]);

/** gRPC status numbers of transient failures (Google clients' numeric `code`): DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE. */
const RETRYABLE_GRPC_CODES = new Set([4, 8, 14]);

/**
 * Whether an error is transient, so that running the shard again may
 * succeed: a FlusterError (or {@link RetryableError}) with code
 * `unavailable`, `deadline_exceeded` or `resource_exhausted`; a timeout; a
 * Node network or I/O error (ECONNRESET, ECONNREFUSED, ETIMEDOUT, EPIPE,
 * EAI_AGAIN, EBUSY, EMFILE, ENFILE, EIO and kin); an HTTP answer 408, 429 or
 * 5xx (`status`, `statusCode`, an AWS SDK error's `$metadata.httpStatusCode`
 * or `$retryable`, a Google client's numeric `code`). Never an invalid
 * argument, a missing object, a refused permission or a cancellation. An
 * error that says nothing itself (a wrapper) is judged by its `cause`.
 */
export function isRetryableError(error: unknown): boolean {
  let e = error;
  for (let depth = 0; depth < 8 && typeof e === "object" && e !== null; depth++) {
    const verdict = judge(e);
    if (verdict !== undefined) return verdict;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** One error's own verdict, or undefined when it has none (then its cause decides). */
function judge(e: object): boolean | undefined {
  const { name, code, status, statusCode, $retryable, $metadata } = e as Record<string, unknown>;
  if (name === "AbortError") return false;
  if (name === "TimeoutError") return true;
  if ($retryable !== undefined && $retryable !== null && $retryable !== false) return true;
  if (typeof code === "string") {
    if (RETRYABLE_CODES.has(code)) return true;
    if (FINAL_FLUSTER_CODES.has(code) || FINAL_SYSTEM_CODES.has(code)) return false;
  }
  const httpStatus = [($metadata as { httpStatusCode?: unknown } | undefined)?.httpStatusCode, status, statusCode, code].find(
    (n): n is number => typeof n === "number" && n >= 100 && n < 600,
  );
  if (httpStatus !== undefined) return httpStatus === 408 || httpStatus === 429 || httpStatus >= 500;
  if (typeof code === "number" && RETRYABLE_GRPC_CODES.has(code)) return true;
  return undefined;
}

/** Which shard failed, and which attempt of it (1 for the first run). */
export interface ShardAttempt {
  stage: number;
  shard: number;
  attempt: number;
}

/** A failed shard attempt that will be run again, as `onRetry` sees it. */
export interface ShardRetry extends ShardAttempt {
  /** The attempt's error, as it reached the driver. */
  error: unknown;
  /** Milliseconds before the next attempt starts. */
  delayMs: number;
}

/** How execute() retries a shard. */
export interface ShardRetryPolicy {
  /** Runs after the first attempt, at most. 0 runs each shard once. */
  maxRetries: number;
  backoff: BackoffOptions;
  /** The caller's say on an error; undefined leaves it to {@link isRetryableError}. */
  retryOn?: ((error: unknown, info: ShardAttempt) => boolean | undefined) | undefined;
  onRetry?: ((event: ShardRetry) => void) | undefined;
  /** The run's signal: once it aborts, nothing is retried. */
  signal?: AbortSignal | undefined;
}

/** Delay before the first retry unless the caller sets one. */
export const DEFAULT_RETRY_BACKOFF: BackoffOptions = { initialMs: 200 };

/**
 * Runs `attempt` for shard `shard` of stage `stage`, again after each
 * retryable failure (with backoff), at most `1 + maxRetries` times. An error
 * that is not retried on the first attempt is thrown as it is; once a shard
 * was retried, its last error is thrown inside a FlusterError saying how
 * many attempts failed (its cause).
 */
export async function runWithRetries<T>(stage: number, shard: number, attempt: () => Promise<T>, policy: ShardRetryPolicy): Promise<T> {
  let attempts = 0;
  try {
    return await retry(
      async () => {
        attempts += 1;
        return attempt();
      },
      {
        ...policy.backoff,
        attempts: policy.maxRetries + 1,
        ...(policy.signal ? { signal: policy.signal } : {}),
        retryIf: (error) => policy.retryOn?.(error, { stage, shard, attempt: attempts }) ?? isRetryableError(error),
        onRetry: (error, _attempt, delayMs) => policy.onRetry?.({ stage, shard, attempt: attempts, error, delayMs }),
      },
    );
  } catch (error) {
    if (attempts <= 1 || policy.signal?.aborted) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new FlusterError(`shard ${shard} of stage ${stage} failed after ${attempts} attempts: ${message}`, finalCode(error), { cause: error });
  }
}

/** The code of a shard's last error: `unavailable` for a transient one, else its own Fluster code (also one rebuilt from a worker), else `internal`. */
function finalCode(error: unknown): FlusterErrorCode {
  if (isRetryableError(error)) return "unavailable";
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" && FINAL_FLUSTER_CODES.has(code) ? (code as FlusterErrorCode) : "internal";
}
