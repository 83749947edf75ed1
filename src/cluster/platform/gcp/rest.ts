// Calls to Google's REST APIs for the gcp platform: a bearer token on every
// request (google-auth-library, or a fixed token), JSON in and out, Google's
// error bodies turned into errors that keep their codes, and long-running
// operations (Compute Engine zone operations, Cloud TPU operations) polled
// until they are done.
import { GoogleAuth } from "google-auth-library";
import { sleep } from "../../../core/backoff.js";
import { FlusterError } from "../../../core/errors.js";
import type { AllocationFailure } from "../types.js";
import type { GcpSettings } from "./settings.js";

const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** An error an API answered with (HTTP status ≥ 400), or a failed operation. */
export class GcpApiError extends FlusterError {
  override name = "GcpApiError";
  /** The HTTP status, or 0 for a failed operation. */
  readonly httpStatus: number;
  /**
   * What the API called the error: Compute Engine's `errors[].reason`
   * (`notFound`, `alreadyExists`) or operation `errors[].code`
   * (`QUOTA_EXCEEDED`, `ZONE_RESOURCE_POOL_EXHAUSTED`), or the google.rpc
   * status (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`).
   */
  readonly reasons: readonly string[];

  constructor(message: string, httpStatus: number, reasons: readonly string[]) {
    super(message, httpStatus === 404 ? "not_found" : httpStatus === 409 ? "already_exists" : "unavailable");
    this.httpStatus = httpStatus;
    this.reasons = reasons;
  }
}

/** A Compute Engine zone operation (the fields the platform reads). */
export interface ComputeOperation {
  name: string;
  status: "PENDING" | "RUNNING" | "DONE";
  error?: { errors?: Array<{ code?: string; message?: string }> };
}

/** A Cloud TPU long-running operation (google.longrunning.Operation). */
export interface TpuOperation {
  name: string;
  done?: boolean;
  error?: { code?: number; message?: string };
}

/** google.rpc.Code names by number, for operation errors. */
const RPC_CODES: Record<number, string> = {
  3: "INVALID_ARGUMENT",
  5: "NOT_FOUND",
  6: "ALREADY_EXISTS",
  7: "PERMISSION_DENIED",
  8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION",
  14: "UNAVAILABLE",
};

/** An authenticated JSON client of the Compute Engine and Cloud TPU REST APIs. */
export class GcpApi {
  private readonly settings: GcpSettings;
  private readonly auth: GoogleAuth | undefined;

  constructor(settings: GcpSettings) {
    this.settings = settings;
    this.auth = settings.accessToken !== undefined ? undefined : new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE], ...(settings.credentialsFile ? { keyFile: settings.credentialsFile } : {}) });
  }

  /** `method` on `url` with a JSON body; the parsed answer, or a GcpApiError. */
  async request<T>(method: string, url: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const token = await this.token();
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${token}`, accept: "application/json", ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw FlusterError.from(signal.reason, "cancelled");
      throw new FlusterError(`${method} ${url} failed: ${(err as Error).message}`, "unavailable", { cause: err });
    }
    const text = await res.text();
    if (!res.ok) throw apiError(method, url, res.status, text);
    return (text === "" ? {} : JSON.parse(text)) as T;
  }

  /** Polls a Compute Engine zone operation until it is DONE; throws a GcpApiError with its error codes when it failed. */
  async waitCompute(zone: string, operation: ComputeOperation, signal?: AbortSignal): Promise<void> {
    let op = operation;
    while (op.status !== "DONE") {
      await sleep(this.settings.pollIntervalSeconds * 1000, signal);
      op = await this.request<ComputeOperation>("GET", `${this.settings.computeEndpoint}/projects/${this.settings.project}/zones/${zone}/operations/${op.name}`, undefined, signal);
    }
    const errors = op.error?.errors ?? [];
    if (errors.length > 0) throw new GcpApiError(errors.map((e) => `${e.code}: ${e.message}`).join("; "), 0, errors.map((e) => e.code ?? ""));
  }

  /** Polls a Cloud TPU operation until it is done; throws a GcpApiError with its status code when it failed. */
  async waitTpu(operation: TpuOperation, signal?: AbortSignal): Promise<void> {
    let op = operation;
    while (!op.done) {
      await sleep(this.settings.pollIntervalSeconds * 1000, signal);
      op = await this.request<TpuOperation>("GET", `${this.settings.tpuEndpoint}/${op.name}`, undefined, signal);
    }
    if (op.error) {
      const status = RPC_CODES[op.error.code ?? 0] ?? `code ${op.error.code}`;
      throw new GcpApiError(`${status}: ${op.error.message ?? ""}`, 0, [status]);
    }
  }

  private async token(): Promise<string> {
    if (this.settings.accessToken !== undefined) return this.settings.accessToken;
    let token: string | null | undefined;
    try {
      token = await (this.auth as GoogleAuth).getAccessToken();
    } catch (err) {
      throw new FlusterError(`cannot get Google Cloud credentials (platforms.gcp.credentialsFile, or Application Default Credentials): ${(err as Error).message}`, "unauthenticated", { cause: err });
    }
    if (!token) throw new FlusterError("Google Cloud credentials gave no access token", "unauthenticated");
    return token;
  }
}

/** A GcpApiError from an error answer: Google's `{ error: { code, message, status, errors: [{ reason }] } }`. */
function apiError(method: string, url: string, status: number, text: string): GcpApiError {
  let message = text.slice(0, 500);
  const reasons: string[] = [];
  try {
    const body = JSON.parse(text) as { error?: { message?: string; status?: string; errors?: Array<{ reason?: string }> } };
    if (body.error?.message) message = body.error.message;
    for (const e of body.error?.errors ?? []) if (e.reason) reasons.push(e.reason);
    if (body.error?.status) reasons.push(body.error.status);
  } catch {
    // not JSON: keep the text
  }
  return new GcpApiError(`${method} ${new URL(url).pathname} answered ${status}: ${message}`, status, reasons);
}

/** The kind of allocation failure an API or operation error is. */
export function allocationFailure(err: unknown): AllocationFailure {
  if (!(err instanceof GcpApiError)) return "error";
  const reasons = err.reasons.map((r) => r.toUpperCase());
  const has = (...names: string[]) => reasons.some((r) => names.includes(r));
  if (has("QUOTA_EXCEEDED", "QUOTAEXCEEDED", "RATELIMITEXCEEDED") || (has("RESOURCE_EXHAUSTED") && /quota|limit/i.test(err.message))) return "quota";
  if (has("ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_NOT_AVAILABLE", "RESOURCE_EXHAUSTED", "STOCKOUT")) return "stockout";
  if (has("INVALID", "INVALID_ARGUMENT", "NOTFOUND", "NOT_FOUND", "INVALID_FIELD_VALUE", "BADREQUEST") || err.httpStatus === 400) return "invalid";
  return "error";
}

/** Whether an error is the API's 404. */
export function isNotFound(err: unknown): boolean {
  return err instanceof GcpApiError && err.httpStatus === 404;
}
