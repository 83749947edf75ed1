// Durable controller state in an embedded SQLite database (WAL). The
// controller keeps its records in memory and writes each change through here;
// on start it loads everything back, so a SIGKILL loses nothing committed.
//
// Commit before visible: a change is seen in memory only once its transaction
// has committed. Inside `transaction()`, the controller changes its records in
// place and says how to undo each change (`keep` a record as it was, `onRollback`
// for a collection); what others may observe (events, calls to workers) waits
// in `afterCommit`. When the commit fails (a full disk), the records are put
// back as they were and the after-commit steps never run, so a failed change
// leaves no trace; the caller gets a StoreWriteError (`unavailable`).
import Database from "better-sqlite3";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { JobSpecSchema } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { validateJobSpec } from "../../rpc/convert.js";
import { FlusterError } from "../../core/errors.js";
import type { JobStatus, TaskState } from "../../core/status.js";
import { ReservationSpecSchema } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import type { AttemptRecord, EndpointRecord, JobGroupRecord, JobRecord, ManagedVmRecord, ReservationRecord, ReservationState, TaskRecord, WorkerRecord } from "./model.js";

/** Schema migrations, applied in order; `PRAGMA user_version` counts those applied. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    parent_job_id TEXT,
    spec BLOB NOT NULL,
    state TEXT NOT NULL,
    pending_reason TEXT,
    error_message TEXT,
    exit_code INTEGER,
    submitted_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    seq INTEGER NOT NULL,
    request_id TEXT UNIQUE
  );
  CREATE INDEX jobs_parent ON jobs(parent_job_id);
  CREATE TABLE tasks (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    task_index INTEGER NOT NULL,
    state TEXT NOT NULL,
    worker_id TEXT,
    failure_count INTEGER NOT NULL,
    preemption_count INTEGER NOT NULL,
    exit_code INTEGER,
    error_message TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (job_id, task_index)
  );
  CREATE TABLE attempts (
    attempt_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    task_index INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    state TEXT NOT NULL,
    exit_code INTEGER,
    error_message TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    result BLOB
  );
  CREATE INDEX attempts_task ON attempts(job_id, task_index, created_at);
  CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    capacity TEXT NOT NULL,
    attributes TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    health TEXT NOT NULL
  );
  CREATE TABLE endpoints (
    endpoint_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    namespace TEXT NOT NULL,
    job_id TEXT,
    metadata TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    ttl_seconds REAL,
    expires_at INTEGER
  );
  CREATE INDEX endpoints_name ON endpoints(namespace, name);
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  // Endpoints owned by an attempt go when it ends.
  `
  ALTER TABLE endpoints ADD COLUMN attempt_id TEXT;
  `,
  // Whether the worker ever had the attempt (attempts stored before count as delivered, as they were treated).
  `
  ALTER TABLE attempts ADD COLUMN delivered INTEGER NOT NULL DEFAULT 1;
  `,
  // Job groups and reservations (issue 14).
  `
  CREATE TABLE job_groups (
    group_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    same_region INTEGER NOT NULL,
    same_zone INTEGER NOT NULL,
    reservation_id TEXT,
    parent_job_id TEXT,
    job_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    request_id TEXT UNIQUE
  );
  CREATE TABLE reservations (
    reservation_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    spec BLOB NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER,
    seq INTEGER NOT NULL,
    request_id TEXT UNIQUE
  );
  ALTER TABLE jobs ADD COLUMN group_id TEXT;
  ALTER TABLE jobs ADD COLUMN reservation_id TEXT;
  `,
  // VMs the autoscaler asked platforms for (issue 17).
  `
  CREATE TABLE vms (
    vm_id TEXT PRIMARY KEY,
    scale_group TEXT NOT NULL,
    platform TEXT NOT NULL,
    state TEXT NOT NULL,
    since INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    worker_ids TEXT NOT NULL,
    platform_id TEXT,
    reason TEXT
  );
  `,
];

type Row = Record<string, unknown>;

/**
 * A write the state database refused (the disk is full, an I/O error, a
 * read-only file): nothing of the change was kept, in the database or in
 * memory. `unavailable`: the same request may succeed once the operator
 * frees space.
 */
export class StoreWriteError extends FlusterError {
  override name = "StoreWriteError";
  constructor(path: string, cause: Error & { code?: string }) {
    const why = cause.code === "SQLITE_FULL" ? "the disk holding it is full" : cause.message;
    super(`the controller cannot write its state database ${path}: ${why} (${cause.message}); nothing was changed, try again once it is writable`, "unavailable", { cause });
  }
}

/** SQLite result codes that mean the database file cannot be written now (rather than a bug in a statement). */
function isStorageFailure(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|NOMEM)/.test(code);
}

// The record fields each upsert binds as they are (the others are encoded: see save*).
const JOB_COLUMNS = ["jobId", "name", "namespace", "parentJobId", "state", "pendingReason", "errorMessage", "exitCode", "submittedAt", "startedAt", "finishedAt", "seq", "requestId", "groupId", "reservationId"] as const;
const GROUP_COLUMNS = ["groupId", "name", "namespace", "reservationId", "parentJobId", "createdAt", "finishedAt", "requestId"] as const;
const RESERVATION_COLUMNS = ["reservationId", "namespace", "state", "message", "createdAt", "expiresAt", "endedAt", "seq", "requestId"] as const;
const TASK_COLUMNS = ["jobId", "taskIndex", "state", "workerId", "failureCount", "preemptionCount", "exitCode", "errorMessage", "startedAt", "finishedAt"] as const;
const ATTEMPT_COLUMNS = ["attemptId", "jobId", "taskIndex", "workerId", "state", "exitCode", "errorMessage", "createdAt", "startedAt", "finishedAt"] as const;
const WORKER_COLUMNS = ["workerId", "address", "registeredAt", "lastSeen", "health"] as const;
const VM_COLUMNS = ["vmId", "platform", "state", "since", "createdAt", "platformId", "reason"] as const;
const ENDPOINT_COLUMNS = ["endpointId", "name", "address", "namespace", "jobId", "attemptId", "registeredAt", "ttlSeconds", "expiresAt"] as const;

/** A statement's named parameters: `columns` from `record` (an absent field binds NULL), and the `encoded` ones. */
function bind<T extends object>(record: T, columns: readonly (keyof T & string)[], encoded: Record<string, unknown> = {}): Record<string, unknown> {
  const params: Record<string, unknown> = { ...encoded };
  for (const column of columns) params[column] = record[column] ?? null;
  return params;
}
const opt = <T>(v: unknown): T | undefined => (v === null || v === undefined ? undefined : (v as T));

/** Everything the store holds, as loaded at start. */
export interface StoredState {
  jobs: JobRecord[];
  workers: WorkerRecord[];
  endpoints: EndpointRecord[];
  groups: JobGroupRecord[];
  reservations: ReservationRecord[];
  /** VMs not yet released or failed long ago (all of them: the autoscaler decides what to keep). */
  vms: ManagedVmRecord[];
  nextSeq: number;
}

export class StateStore {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts;
  private revisionValue = 0;
  /** Emits `"commit"` after every committed change (a transaction, a group commit, a lone write); one listener per live view (a dashboard tab), so no limit. */
  readonly commits = new EventEmitter().setMaxListeners(0);

  /** Grows by one with every committed change: live views compare it to tell whether to re-read. */
  get revision(): number {
    return this.revisionValue;
  }

  private committed(): void {
    this.revisionValue++;
    this.commits.emit("commit", this.revisionValue);
  }

  /** Opens (creating and migrating) the database; `":memory:"` for tests. */
  constructor(stateDir: string | ":memory:") {
    if (stateDir === ":memory:") {
      this.path = ":memory:";
    } else {
      mkdirSync(stateDir, { recursive: true });
      this.path = join(stateDir, "controller.sqlite");
    }
    this.db = new Database(this.path);
    this.db.pragma("journal_mode = WAL");
    // NORMAL in WAL mode: a committed transaction survives a process kill
    // (only a power loss may drop the last few).
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.migrate();
    const db = this.db;
    this.stmts = {
      upsertJob: db.prepare(`INSERT INTO jobs (job_id, name, namespace, parent_job_id, spec, state, pending_reason, error_message, exit_code, submitted_at, started_at, finished_at, seq, request_id, group_id, reservation_id)
        VALUES (@jobId, @name, @namespace, @parentJobId, @spec, @state, @pendingReason, @errorMessage, @exitCode, @submittedAt, @startedAt, @finishedAt, @seq, @requestId, @groupId, @reservationId)
        ON CONFLICT(job_id) DO UPDATE SET state = excluded.state, pending_reason = excluded.pending_reason, error_message = excluded.error_message,
          exit_code = excluded.exit_code, started_at = excluded.started_at, finished_at = excluded.finished_at`),
      upsertTask: db.prepare(`INSERT INTO tasks (job_id, task_index, state, worker_id, failure_count, preemption_count, exit_code, error_message, started_at, finished_at)
        VALUES (@jobId, @taskIndex, @state, @workerId, @failureCount, @preemptionCount, @exitCode, @errorMessage, @startedAt, @finishedAt)
        ON CONFLICT(job_id, task_index) DO UPDATE SET state = excluded.state, worker_id = excluded.worker_id, failure_count = excluded.failure_count,
          preemption_count = excluded.preemption_count, exit_code = excluded.exit_code, error_message = excluded.error_message,
          started_at = excluded.started_at, finished_at = excluded.finished_at`),
      upsertAttempt: db.prepare(`INSERT INTO attempts (attempt_id, job_id, task_index, worker_id, state, exit_code, error_message, created_at, started_at, finished_at, result, delivered)
        VALUES (@attemptId, @jobId, @taskIndex, @workerId, @state, @exitCode, @errorMessage, @createdAt, @startedAt, @finishedAt, @result, @delivered)
        ON CONFLICT(attempt_id) DO UPDATE SET state = excluded.state, exit_code = excluded.exit_code, error_message = excluded.error_message,
          started_at = excluded.started_at, finished_at = excluded.finished_at, result = excluded.result, delivered = excluded.delivered`),
      upsertWorker: db.prepare(`INSERT INTO workers (worker_id, address, capacity, attributes, registered_at, last_seen, health)
        VALUES (@workerId, @address, @capacity, @attributes, @registeredAt, @lastSeen, @health)
        ON CONFLICT(worker_id) DO UPDATE SET address = excluded.address, capacity = excluded.capacity, attributes = excluded.attributes,
          registered_at = excluded.registered_at, last_seen = excluded.last_seen, health = excluded.health`),
      upsertEndpoint: db.prepare(`INSERT INTO endpoints (endpoint_id, name, address, namespace, job_id, attempt_id, metadata, registered_at, ttl_seconds, expires_at)
        VALUES (@endpointId, @name, @address, @namespace, @jobId, @attemptId, @metadata, @registeredAt, @ttlSeconds, @expiresAt)
        ON CONFLICT(endpoint_id) DO UPDATE SET expires_at = excluded.expires_at`),
      upsertGroup: db.prepare(`INSERT INTO job_groups (group_id, name, namespace, same_region, same_zone, reservation_id, parent_job_id, job_ids, created_at, finished_at, request_id)
        VALUES (@groupId, @name, @namespace, @sameRegion, @sameZone, @reservationId, @parentJobId, @jobIds, @createdAt, @finishedAt, @requestId)
        ON CONFLICT(group_id) DO UPDATE SET finished_at = excluded.finished_at`),
      upsertReservation: db.prepare(`INSERT INTO reservations (reservation_id, namespace, spec, state, message, created_at, expires_at, ended_at, seq, request_id)
        VALUES (@reservationId, @namespace, @spec, @state, @message, @createdAt, @expiresAt, @endedAt, @seq, @requestId)
        ON CONFLICT(reservation_id) DO UPDATE SET state = excluded.state, message = excluded.message, ended_at = excluded.ended_at`),
      upsertVm: db.prepare(`INSERT INTO vms (vm_id, scale_group, platform, state, since, created_at, worker_ids, platform_id, reason)
        VALUES (@vmId, @group, @platform, @state, @since, @createdAt, @workerIds, @platformId, @reason)
        ON CONFLICT(vm_id) DO UPDATE SET state = excluded.state, since = excluded.since, worker_ids = excluded.worker_ids,
          platform_id = excluded.platform_id, reason = excluded.reason`),
      deleteEndpoint: db.prepare(`DELETE FROM endpoints WHERE endpoint_id = ?`),
      getMeta: db.prepare(`SELECT value FROM meta WHERE key = ?`),
      setMeta: db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`),
    };
  }

  private migrate(): void {
    const version = this.db.pragma("user_version", { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new Error(`state database ${this.path} has schema version ${version}, newer than this controller knows (${MIGRATIONS.length}); upgrade fluster`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] ?? "");
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** Depth of `transaction()` calls (a nested one is part of the outer one). */
  private depth = 0;
  private kept = new Map<object, unknown>();
  private rollbacks: Array<() => void> = [];
  private afterCommits: Array<() => void> = [];

  /**
   * Runs `fn` in one transaction: its writes, and the in-memory changes it
   * registered with {@link keep} and {@link onRollback}, commit together or
   * not at all. Throws a {@link StoreWriteError} when the database cannot be
   * written (after undoing `fn`'s in-memory changes).
   */
  transaction<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    this.flush();
    this.depth = 1;
    let result: T;
    try {
      result = this.db.transaction(fn)();
    } catch (err) {
      this.undo();
      throw this.storeError(err);
    } finally {
      this.depth = 0;
    }
    const after = this.afterCommits;
    this.kept = new Map();
    this.rollbacks = [];
    this.afterCommits = [];
    this.committed();
    for (const step of after) step();
    return result;
  }

  /**
   * Inside a transaction: `record` (an object or array) gets back the own
   * fields (elements) it has now if the transaction fails. Call it before
   * changing the record; outside a transaction it does nothing.
   */
  keep(record: object): void {
    if (this.depth === 0 || this.kept.has(record)) return;
    this.kept.set(record, Array.isArray(record) ? [...(record as unknown[])] : { ...record });
  }

  /** Inside a transaction: `undo` runs if it fails (latest first). Outside one, nothing. */
  onRollback(undo: () => void): void {
    if (this.depth > 0) this.rollbacks.push(undo);
  }

  /** Runs `step` once the current transaction commits (never if it fails), or now outside one. */
  afterCommit(step: () => void): void {
    if (this.depth > 0) this.afterCommits.push(step);
    else step();
  }

  private undo(): void {
    for (const undo of this.rollbacks.reverse()) undo();
    for (const [record, before] of this.kept) {
      if (Array.isArray(record)) record.splice(0, record.length, ...(before as unknown[]));
      else {
        const target = record as Record<string, unknown>;
        for (const key of Object.keys(target)) if (!Object.hasOwn(before as object, key)) delete target[key];
        Object.assign(target, before);
      }
    }
    this.kept = new Map();
    this.rollbacks = [];
    this.afterCommits = [];
  }

  private storeError(err: unknown): unknown {
    return isStorageFailure(err) ? new StoreWriteError(this.path, err) : err;
  }

  /** One statement outside a transaction, with a storage failure as a StoreWriteError. */
  private write(run: () => void): void {
    try {
      run();
    } catch (err) {
      throw this.storeError(err);
    }
    if (this.depth === 0) this.committed();
  }

  private deferred: Array<() => void> = [];
  private deferredWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];

  /**
   * Group commit: queues `write` and resolves once it is committed. Writes
   * queued in the same turn of the event loop share one transaction, so a
   * burst of launches pays for one commit instead of one each.
   */
  defer(write: () => void): Promise<void> {
    this.deferred.push(write);
    if (this.deferred.length === 1) setImmediate(() => this.flush());
    return new Promise((resolve, reject) => this.deferredWaiters.push({ resolve, reject }));
  }

  /** Commits queued writes now (also done before every transaction, to keep order). */
  flush(): void {
    if (this.deferred.length === 0) return;
    const writes = this.deferred;
    const waiters = this.deferredWaiters;
    this.deferred = [];
    this.deferredWaiters = [];
    try {
      this.db.transaction(() => {
        for (const write of writes) write();
      })();
    } catch (err) {
      const error = this.storeError(err);
      for (const w of waiters) w.reject(error);
      return;
    }
    this.committed();
    for (const w of waiters) w.resolve();
  }

  saveJob(job: JobRecord): void {
    this.write(() => this.stmts.upsertJob.run(bind(job, JOB_COLUMNS, { spec: Buffer.from(toBinary(JobSpecSchema, job.spec)) })));
  }

  saveTask(task: TaskRecord): void {
    this.write(() => this.stmts.upsertTask.run(bind(task, TASK_COLUMNS)));
  }

  saveAttempt(a: AttemptRecord): void {
    this.write(() => this.stmts.upsertAttempt.run(bind(a, ATTEMPT_COLUMNS, { result: a.result ? Buffer.from(a.result) : null, delivered: a.delivered ? 1 : 0 })));
  }

  saveWorker(w: WorkerRecord): void {
    this.write(() => this.stmts.upsertWorker.run(bind(w, WORKER_COLUMNS, { capacity: JSON.stringify(w.capacity), attributes: JSON.stringify(w.attributes) })));
  }

  saveEndpoint(e: EndpointRecord): void {
    this.write(() => this.stmts.upsertEndpoint.run(bind(e, ENDPOINT_COLUMNS, { metadata: JSON.stringify(e.metadata) })));
  }

  saveGroup(g: JobGroupRecord): void {
    this.write(() =>
      this.stmts.upsertGroup.run(bind(g, GROUP_COLUMNS, { sameRegion: g.sameRegion ? 1 : 0, sameZone: g.sameZone ? 1 : 0, jobIds: JSON.stringify(g.jobIds) })),
    );
  }

  saveReservation(r: ReservationRecord): void {
    this.write(() => this.stmts.upsertReservation.run(bind(r, RESERVATION_COLUMNS, { spec: Buffer.from(toBinary(ReservationSpecSchema, r.spec)) })));
  }

  saveVm(vm: ManagedVmRecord): void {
    this.write(() => this.stmts.upsertVm.run(bind(vm, VM_COLUMNS, { group: vm.group, workerIds: JSON.stringify(vm.workerIds) })));
  }

  /** Deletes the rows of VMs that ended (released or failed) before `endedBefore` (epoch ms); returns how many. */
  deleteEndedVms(endedBefore: number): number {
    this.flush();
    return this.db.prepare(`DELETE FROM vms WHERE state IN ('released', 'failed') AND since < ?`).run(endedBefore).changes;
  }

  deleteEndpoint(endpointId: string): void {
    this.write(() => this.stmts.deleteEndpoint.run(endpointId));
  }

  /** A value of the controller's own (e.g. its signing key), or undefined. */
  getMeta(key: string): string | undefined {
    this.flush();
    const row = this.stmts.getMeta.get(key) as { value: string } | undefined;
    return row?.value;
  }

  /** Stores a value of the controller's own, committed before it returns. */
  setMeta(key: string, value: string): void {
    this.transaction(() => this.stmts.setMeta.run(key, value));
  }

  /**
   * Deletes the rows of workers lost before `lastSeenBefore` (epoch ms) and
   * returns their ids. Their attempts keep the worker id, for history.
   */
  deleteLostWorkers(lastSeenBefore: number): string[] {
    this.flush();
    const rows = this.db.prepare(`DELETE FROM workers WHERE health = 'lost' AND last_seen < ? RETURNING worker_id`).all(lastSeenBefore) as Row[];
    return rows.map((r) => r.worker_id as string);
  }

  /** Loads every record (at controller start). */
  load(): StoredState {
    const attempts = new Map<string, AttemptRecord[]>();
    for (const r of this.db.prepare(`SELECT * FROM attempts ORDER BY created_at, rowid`).all() as Row[]) {
      const a: AttemptRecord = {
        attemptId: r.attempt_id as string,
        jobId: r.job_id as string,
        taskIndex: r.task_index as number,
        workerId: r.worker_id as string,
        state: r.state as TaskState,
        createdAt: r.created_at as number,
        delivered: r.delivered !== 0,
      };
      assignDefined(a, {
        exitCode: opt<number>(r.exit_code),
        errorMessage: opt<string>(r.error_message),
        startedAt: opt<number>(r.started_at),
        finishedAt: opt<number>(r.finished_at),
        result: r.result ? new Uint8Array(r.result as Buffer) : undefined,
      });
      const key = `${a.jobId}\u0000${a.taskIndex}`;
      const list = attempts.get(key) ?? [];
      list.push(a);
      attempts.set(key, list);
    }
    const tasks = new Map<string, TaskRecord[]>();
    for (const r of this.db.prepare(`SELECT * FROM tasks ORDER BY job_id, task_index`).all() as Row[]) {
      const t: TaskRecord = {
        jobId: r.job_id as string,
        taskIndex: r.task_index as number,
        state: r.state as TaskState,
        failureCount: r.failure_count as number,
        preemptionCount: r.preemption_count as number,
        attempts: attempts.get(`${r.job_id as string}\u0000${r.task_index as number}`) ?? [],
      };
      assignDefined(t, {
        workerId: opt<string>(r.worker_id),
        exitCode: opt<number>(r.exit_code),
        errorMessage: opt<string>(r.error_message),
        startedAt: opt<number>(r.started_at),
        finishedAt: opt<number>(r.finished_at),
      });
      const list = tasks.get(t.jobId) ?? [];
      list.push(t);
      tasks.set(t.jobId, list);
    }
    const jobs: JobRecord[] = [];
    let nextSeq = 1;
    for (const r of this.db.prepare(`SELECT * FROM jobs ORDER BY seq`).all() as Row[]) {
      const spec = fromBinary(JobSpecSchema, r.spec as Buffer);
      const job: JobRecord = {
        jobId: r.job_id as string,
        name: r.name as string,
        namespace: r.namespace as string,
        spec,
        // A job stored under a higher replicas limit than today's still loads.
        request: validateJobSpec(spec, "job", { maxReplicas: Infinity }),
        state: r.state as JobStatus,
        submittedAt: r.submitted_at as number,
        seq: r.seq as number,
        revision: 0,
        tasks: tasks.get(r.job_id as string) ?? [],
      };
      assignDefined(job, {
        parentJobId: opt<string>(r.parent_job_id),
        pendingReason: opt<string>(r.pending_reason),
        errorMessage: opt<string>(r.error_message),
        exitCode: opt<number>(r.exit_code),
        startedAt: opt<number>(r.started_at),
        finishedAt: opt<number>(r.finished_at),
        requestId: opt<string>(r.request_id),
        groupId: opt<string>(r.group_id),
        reservationId: opt<string>(r.reservation_id),
      });
      jobs.push(job);
      nextSeq = Math.max(nextSeq, job.seq + 1);
    }
    const workers = (this.db.prepare(`SELECT * FROM workers`).all() as Row[]).map(
      (r): WorkerRecord => ({
        workerId: r.worker_id as string,
        address: r.address as string,
        capacity: JSON.parse(r.capacity as string) as WorkerRecord["capacity"],
        attributes: JSON.parse(r.attributes as string) as Record<string, string>,
        registeredAt: r.registered_at as number,
        lastSeen: r.last_seen as number,
        health: r.health as WorkerRecord["health"],
      }),
    );
    const endpoints = (this.db.prepare(`SELECT * FROM endpoints`).all() as Row[]).map((r): EndpointRecord => {
      const e: EndpointRecord = {
        endpointId: r.endpoint_id as string,
        name: r.name as string,
        address: r.address as string,
        namespace: r.namespace as string,
        metadata: JSON.parse(r.metadata as string) as Record<string, string>,
        registeredAt: r.registered_at as number,
      };
      assignDefined(e, { jobId: opt<string>(r.job_id), attemptId: opt<string>(r.attempt_id), ttlSeconds: opt<number>(r.ttl_seconds), expiresAt: opt<number>(r.expires_at) });
      return e;
    });
    const groups = (this.db.prepare(`SELECT * FROM job_groups ORDER BY created_at, rowid`).all() as Row[]).map((r): JobGroupRecord => {
      const g: JobGroupRecord = {
        groupId: r.group_id as string,
        name: r.name as string,
        namespace: r.namespace as string,
        sameRegion: r.same_region !== 0,
        sameZone: r.same_zone !== 0,
        jobIds: JSON.parse(r.job_ids as string) as string[],
        createdAt: r.created_at as number,
      };
      assignDefined(g, {
        reservationId: opt<string>(r.reservation_id),
        parentJobId: opt<string>(r.parent_job_id),
        finishedAt: opt<number>(r.finished_at),
        requestId: opt<string>(r.request_id),
      });
      return g;
    });
    const reservations = (this.db.prepare(`SELECT * FROM reservations ORDER BY seq`).all() as Row[]).map((r): ReservationRecord => {
      const record: ReservationRecord = {
        reservationId: r.reservation_id as string,
        namespace: r.namespace as string,
        spec: fromBinary(ReservationSpecSchema, r.spec as Buffer),
        state: r.state as ReservationState,
        createdAt: r.created_at as number,
        expiresAt: r.expires_at as number,
        seq: r.seq as number,
      };
      assignDefined(record, { message: opt<string>(r.message), endedAt: opt<number>(r.ended_at), requestId: opt<string>(r.request_id) });
      return record;
    });
    const vms = (this.db.prepare(`SELECT * FROM vms ORDER BY created_at, rowid`).all() as Row[]).map((r): ManagedVmRecord => {
      const vm: ManagedVmRecord = {
        vmId: r.vm_id as string,
        group: r.scale_group as string,
        platform: r.platform as string,
        state: r.state as ManagedVmRecord["state"],
        since: r.since as number,
        createdAt: r.created_at as number,
        workerIds: JSON.parse(r.worker_ids as string) as string[],
      };
      assignDefined(vm, { platformId: opt<string>(r.platform_id), reason: opt<string>(r.reason) });
      return vm;
    });
    return { jobs, workers, endpoints, groups, reservations, vms, nextSeq };
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}

/** Copies the defined values of `fields` onto `target` (keeps optional fields truly absent). */
function assignDefined<T extends object>(target: T, fields: Partial<T>): void {
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) (target as Record<string, unknown>)[key] = value;
  }
}
