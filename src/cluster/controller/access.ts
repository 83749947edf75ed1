// Who may call which ControllerService method, in one table: the operator
// (the cluster token) may call everything; a worker only what it sends for
// itself; a job attempt only what stays inside its namespace and, for
// launches and terminations, its own subtree of jobs. `guardService` wraps
// every handler with its rule, so a method without one cannot be served.
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { DescMethod, MessageShape } from "@bufbuild/protobuf";
import { FlusterError } from "../../core/errors.js";
import { ControllerService } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { DEFAULT_NAMESPACE } from "./endpoints.js";

/** Who a call comes from, as its bearer token says. */
export type Caller =
  /** Holds the cluster token: every method, every namespace. */
  | { kind: "operator" }
  /** A worker daemon with its own credential. */
  | { kind: "worker"; workerId: string }
  /** A job attempt with its credential: its namespace, its subtree. */
  | { kind: "job"; jobId: string; attemptId: string; namespace: string }
  /** A namespace credential: meant for the namespace's servers (actor servers), not the controller. */
  | { kind: "namespace"; namespace: string };

/** Where handlers find the caller; unset when the controller runs without auth (everyone is the operator then). */
export const CALLER = createContextKey<Caller | undefined>(undefined, { description: "fluster caller" });

/** What the rules need to know about the controller's state. */
export interface AccessScope {
  /** A job's namespace and parent, when the job exists. */
  job(jobId: string): { namespace: string; parentJobId?: string } | undefined;
  /** An endpoint's namespace, when it exists. */
  endpoint(endpointId: string): { namespace: string } | undefined;
  /** The job an attempt belongs to, when the attempt exists. */
  attemptJob(attemptId: string): string | undefined;
  /** The job a launch with this request id made, when there was one (a retried launch answers it). */
  requestedJob(requestId: string): string | undefined;
  /** A job group's namespace and launching job, when the group exists. */
  group(groupId: string): { namespace: string; parentJobId?: string } | undefined;
  /** The group a group launch with this request id made. */
  requestedGroup(requestId: string): { namespace: string; parentJobId?: string } | undefined;
  /** A reservation's namespace, when it exists. */
  reservation(reservationId: string): { namespace: string } | undefined;
  /** The reservation a creation with this request id made. */
  requestedReservation(requestId: string): { namespace: string } | undefined;
}

type ControllerMethods = typeof ControllerService.method;
/** A method name of ControllerService (`launchJob`, …). */
export type ControllerMethodName = keyof ControllerMethods;
type RequestOf<M extends ControllerMethodName> = MessageShape<ControllerMethods[M]["input"]>;

/**
 * One method's rule: the kinds of caller it admits besides the operator,
 * and for a job caller a check of the request (which throws
 * `permission_denied`). Client-streaming methods get no request to check.
 */
export interface MethodRule<R> {
  /** Callers other than the operator that may call it. */
  allow: ReadonlyArray<"worker" | "job">;
  /**
   * False for what only a worker may say for itself (its heartbeat's
   * attempt outcomes): the operator token is refused too. @default true
   */
  operator?: boolean;
  /** Checks a worker's request (e.g. that it speaks for itself). */
  worker?: (caller: { workerId: string }, request: R) => void;
  /** Checks a job's request against its namespace and subtree. */
  job?: (caller: Extract<Caller, { kind: "job" }>, request: R, scope: AccessScope) => void;
}

/** The rule of every method; the type makes a new method without a rule a compile error, and a test checks the table. */
export type AccessTable = { [M in ControllerMethodName]: MethodRule<RequestOf<M>> };

const ns = (namespace: string) => namespace || DEFAULT_NAMESPACE;

function denied(message: string): FlusterError {
  return new FlusterError(message, "permission_denied");
}

/** A job may act in its own namespace only. */
function sameNamespace(caller: { jobId: string; namespace: string }, namespace: string, what: string): void {
  if (ns(namespace) !== caller.namespace) {
    throw denied(`job ${caller.jobId} (namespace ${caller.namespace}) may not ${what} in namespace ${ns(namespace)}: a job credential acts only in its own namespace`);
  }
}

/** A job may read jobs of its namespace; an unknown job is left to the handler (not_found). */
function jobInNamespace(caller: { jobId: string; namespace: string }, jobId: string, scope: AccessScope, what: string): void {
  const job = scope.job(jobId);
  if (job && job.namespace !== caller.namespace) {
    throw denied(`job ${caller.jobId} (namespace ${caller.namespace}) may not ${what} job ${jobId} of namespace ${job.namespace}: a job credential acts only in its own namespace`);
  }
}

/** Whether `jobId` is `rootId` or one of its descendants. */
export function inSubtree(jobId: string, rootId: string, scope: AccessScope): boolean {
  const seen = new Set<string>();
  for (let id: string | undefined = jobId; id !== undefined && !seen.has(id); id = scope.job(id)?.parentJobId) {
    if (id === rootId) return true;
    seen.add(id);
  }
  return false;
}

/** A job may terminate (and parent launches under) itself and its descendants only. */
function jobInSubtree(caller: { jobId: string; namespace: string }, jobId: string, scope: AccessScope, what: string): void {
  jobInNamespace(caller, jobId, scope, what);
  if (scope.job(jobId) && !inSubtree(jobId, caller.jobId, scope)) {
    throw denied(`job ${caller.jobId} may not ${what} job ${jobId}: a job credential acts only on its own job and its descendants`);
  }
}

function launchCheck(caller: Extract<Caller, { kind: "job" }>, req: { namespace: string; parentJobId: string; requestId: string }, scope: AccessScope): void {
  sameNamespace(caller, req.namespace || caller.namespace, "launch jobs");
  if (!req.parentJobId) throw denied(`job ${caller.jobId} must launch jobs as its children (set parent_job_id to ${caller.jobId} or a descendant)`);
  if (!scope.job(req.parentJobId)) throw new FlusterError(`parent job ${req.parentJobId} not found`, "not_found");
  jobInSubtree(caller, req.parentJobId, scope, "launch children under");
  // A retried launch answers the first one's job: only a job of the caller's own subtree.
  const earlier = req.requestId ? scope.requestedJob(req.requestId) : undefined;
  if (earlier && !inSubtree(earlier, caller.jobId, scope)) throw denied(`job ${caller.jobId} may not reuse request id ${req.requestId}: it launched a job outside its subtree`);
}

function endpointInNamespace(caller: { jobId: string; namespace: string }, endpointId: string, scope: AccessScope, what: string): void {
  const endpoint = scope.endpoint(endpointId);
  if (endpoint && endpoint.namespace !== caller.namespace) {
    throw denied(`job ${caller.jobId} (namespace ${caller.namespace}) may not ${what} endpoint ${endpointId} of namespace ${endpoint.namespace}`);
  }
}

function groupLaunchCheck(caller: Extract<Caller, { kind: "job" }>, req: { namespace: string; parentJobId: string; requestId: string }, scope: AccessScope): void {
  launchCheck(caller, { ...req, requestId: "" }, scope);
  // A retried group launch answers the first one's group: only one launched from the caller's own subtree.
  const earlier = req.requestId ? scope.requestedGroup(req.requestId) : undefined;
  if (earlier && !(earlier.parentJobId && inSubtree(earlier.parentJobId, caller.jobId, scope))) {
    throw denied(`job ${caller.jobId} may not reuse request id ${req.requestId}: it launched a group outside its subtree`);
  }
}

/** A job may read groups of its namespace; an unknown group is left to the handler (not_found). */
function groupInNamespace(caller: { jobId: string; namespace: string }, groupId: string, scope: AccessScope, what: string): void {
  const group = scope.group(groupId);
  if (group && group.namespace !== caller.namespace) {
    throw denied(`job ${caller.jobId} (namespace ${caller.namespace}) may not ${what} job group ${groupId} of namespace ${group.namespace}: a job credential acts only in its own namespace`);
  }
}

/** A job may terminate only groups launched from its subtree. */
function groupInSubtree(caller: { jobId: string; namespace: string }, groupId: string, scope: AccessScope): void {
  groupInNamespace(caller, groupId, scope, "terminate");
  const group = scope.group(groupId);
  if (group && !(group.parentJobId && inSubtree(group.parentJobId, caller.jobId, scope))) {
    throw denied(`job ${caller.jobId} may not terminate job group ${groupId}: a job credential acts only on groups launched by its own job and its descendants`);
  }
}

/** A job may use reservations of its namespace; an unknown one is left to the handler (not_found). */
function reservationInNamespace(caller: { jobId: string; namespace: string }, reservationId: string, scope: AccessScope, what: string): void {
  const reservation = scope.reservation(reservationId);
  if (reservation && reservation.namespace !== caller.namespace) {
    throw denied(`job ${caller.jobId} (namespace ${caller.namespace}) may not ${what} reservation ${reservationId} of namespace ${reservation.namespace}: a job credential acts only in its own namespace`);
  }
}

const operatorOnly = { allow: [] } as const;

/** A listing a job may read for its own namespace only, never every namespace's (`what`: "jobs", "endpoints", …). */
function ownNamespaceListing(what: string): MethodRule<{ namespace: string; allNamespaces: boolean }> {
  return {
    allow: ["job"],
    job: (c, req) => {
      if (req.allNamespaces) throw denied(`job ${c.jobId} may not list every namespace's ${what}: a job credential sees only its own namespace`);
      sameNamespace(c, req.namespace, `list ${what}`);
    },
  };
}

/**
 * The rules. Jobs: launch children (alone or in groups), read and watch
 * their namespace's jobs, groups and logs, terminate their subtree (and
 * groups it launched), create, read and release their namespace's
 * reservations, use their namespace's endpoints,
 * upload workspace bundles (a child's launch packs one) and get a
 * namespace credential for their namespace; never list every namespace,
 * never a worker's or an operator's method. Workers: register and
 * heartbeat as themselves, download bundles.
 */
export const CONTROLLER_ACCESS: AccessTable = {
  launchJob: { allow: ["job"], job: (c, req, scope) => launchCheck(c, req, scope) },
  launchJobGroup: { allow: ["job"], job: (c, req, scope) => groupLaunchCheck(c, req, scope) },
  getJobGroup: { allow: ["job"], job: (c, req, scope) => groupInNamespace(c, req.groupId, scope, "read") },
  listJobGroups: ownNamespaceListing("job groups"),
  terminateJobGroup: { allow: ["job"], job: (c, req, scope) => groupInSubtree(c, req.groupId, scope) },
  getJobStatus: { allow: ["job"], job: (c, req, scope) => jobInNamespace(c, req.jobId, scope, "read") },
  watchJob: { allow: ["job"], job: (c, req, scope) => jobInNamespace(c, req.jobId, scope, "watch") },
  terminateJob: { allow: ["job"], job: (c, req, scope) => jobInSubtree(c, req.jobId, scope, "terminate") },
  listJobs: ownNamespaceListing("jobs"),
  streamJobLogs: { allow: ["job"], job: (c, req, scope) => jobInNamespace(c, req.jobId, scope, "read the logs of") },
  registerWorker: {
    allow: ["worker"],
    worker: (c, req) => {
      if (req.workerId !== c.workerId) throw denied(`worker ${c.workerId} may not register as worker ${req.workerId}`);
    },
  },
  heartbeat: {
    allow: ["worker"],
    operator: false,
    worker: (c, req) => {
      if (req.workerId !== c.workerId) throw denied(`worker ${c.workerId} may not send heartbeats for worker ${req.workerId}`);
    },
  },
  listWorkers: operatorOnly,
  listVms: operatorOnly,
  issueNamespaceCredential: { allow: ["job"], job: (c, req) => sameNamespace(c, req.namespace || c.namespace, "get a credential") },
  registerEndpoint: {
    allow: ["job"],
    job: (c, req, scope) => {
      sameNamespace(c, req.namespace, "register endpoints");
      const owner = req.attemptId ? scope.attemptJob(req.attemptId) : req.jobId || undefined;
      if (owner) jobInSubtree(c, owner, scope, "register endpoints owned by");
    },
  },
  renewEndpoints: { allow: ["job"], job: (c, req, scope) => req.endpointIds.forEach((id) => endpointInNamespace(c, id, scope, "renew")) },
  unregisterEndpoint: { allow: ["job"], job: (c, req, scope) => endpointInNamespace(c, req.endpointId, scope, "unregister") },
  lookupEndpoints: { allow: ["job"], job: (c, req) => sameNamespace(c, req.namespace, "look up endpoints") },
  watchEndpoints: { allow: ["job"], job: (c, req) => sameNamespace(c, req.namespace, "watch endpoints") },
  listEndpoints: ownNamespaceListing("endpoints"),
  // A revision number tells nothing about any namespace: anyone signed in may watch it.
  watchCluster: { allow: ["job", "worker"] },
  missingBlobs: { allow: ["job"] },
  uploadBlobs: { allow: ["job"] },
  putBundle: { allow: ["job"] },
  getBundle: { allow: ["worker"] },
  getBlobs: { allow: ["worker"] },
  // An RL or multislice driver runs as a job: it holds room for the jobs it launches, in its own namespace.
  createReservation: {
    allow: ["job"],
    job: (c, req, scope) => {
      sameNamespace(c, req.namespace || c.namespace, "create reservations");
      const earlier = req.requestId ? scope.requestedReservation(req.requestId) : undefined;
      if (earlier && earlier.namespace !== c.namespace) throw denied(`job ${c.jobId} may not reuse request id ${req.requestId}: it created a reservation in namespace ${earlier.namespace}`);
    },
  },
  getReservation: { allow: ["job"], job: (c, req, scope) => reservationInNamespace(c, req.reservationId, scope, "read") },
  releaseReservation: { allow: ["job"], job: (c, req, scope) => reservationInNamespace(c, req.reservationId, scope, "release") },
  listReservations: ownNamespaceListing("reservations"),
};

/** Throws `permission_denied` unless `caller` may call `method` with `request` (undefined for a client stream). */
export function authorize<M extends ControllerMethodName>(
  table: AccessTable,
  method: M,
  caller: Caller | undefined,
  request: RequestOf<M> | undefined,
  scope: AccessScope,
): void {
  // No caller: the controller runs without auth, and every caller is the operator.
  if (caller === undefined) return;
  const rule = table[method] as MethodRule<RequestOf<M>> | undefined;
  const name = ControllerService.method[method].name;
  if (caller.kind === "operator") {
    if (rule?.operator === false) throw denied(`the cluster token may not call ${name}: only a worker's own credential speaks for the worker`);
    return;
  }
  if (!rule) throw denied(`${method} has no access rule: only the operator may call it`);
  if (caller.kind === "namespace") {
    throw denied(`a namespace credential (for namespace ${caller.namespace}) is for that namespace's servers, not the controller: ${name} needs the cluster token or a job's credential`);
  }
  if (!rule.allow.includes(caller.kind)) {
    const who = caller.kind === "worker" ? `worker ${caller.workerId}` : `job ${caller.jobId}`;
    throw denied(`${who} may not call ${name} (a ${caller.kind} credential; it needs ${rule.allow.length === 0 ? "the cluster token" : `the cluster token or a ${rule.allow.join(" or ")} credential`})`);
  }
  if (request === undefined) return;
  if (caller.kind === "worker") rule.worker?.(caller, request);
  else rule.job?.(caller, request, scope);
}

type AnyHandler = (req: unknown, ctx: HandlerContext) => unknown;

/**
 * Wraps every handler of `impl` with its rule from `table`: the caller comes
 * from the call's context values (set by the authenticator). A handler
 * without a rule fails every call (and the typed table makes it a compile
 * error first).
 */
export function guardService<I extends object>(impl: I, table: AccessTable, scope: AccessScope, onDenied?: (error: FlusterError) => void): I {
  const guarded: Record<string, AnyHandler> = {};
  for (const [key, handler] of Object.entries(impl) as Array<[string, AnyHandler]>) {
    const method = key as ControllerMethodName;
    const desc = (ControllerService.method as Record<string, DescMethod | undefined>)[key];
    const check = (req: unknown, ctx: HandlerContext) => {
      try {
        authorize(table, method, ctx.values.get(CALLER), req as never, scope);
      } catch (err) {
        if (err instanceof FlusterError && err.code === "permission_denied") onDenied?.(err);
        throw err;
      }
    };
    if (desc?.methodKind === "server_streaming") {
      guarded[key] = async function* (req, ctx) {
        check(req, ctx);
        yield* handler(req, ctx) as AsyncIterable<unknown>;
      };
    } else if (desc?.methodKind === "client_streaming" || desc?.methodKind === "bidi_streaming") {
      guarded[key] = (reqs, ctx) => {
        check(undefined, ctx);
        return handler(reqs, ctx);
      };
    } else {
      guarded[key] = (req, ctx) => {
        check(req, ctx);
        return handler(req, ctx);
      };
    }
  }
  return guarded as I;
}
