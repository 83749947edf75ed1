// A resumable run's manifest: what a run with a runId records under its run
// directory so that a later execute(…, { runId, resume: true }) can skip the
// shards it finished. `manifest/plan.json` describes the plan (stages, shard
// counts, the source's fingerprint) and is written first; as each shard
// finishes, `manifest/stage-<i>/shard-<j>` holds its encoded ShardResult
// (inline chunks included). Everything goes through the ObjectStore of the
// run directory, so a run on object storage resumes the same way.
import { createHash } from "node:crypto";
import { FlusterError, ValidationError } from "../core/errors.js";
import { decodeValue, encodeValue } from "../rpc/codec.js";
import type { Dataset } from "./dataset.js";
import { joinPath, storeFor, type ObjectStore } from "./fs/index.js";
import type { Stage } from "./plan.js";
import type { ShardInput, ShardResult } from "./runner.js";

/** What a run's plan looked like: compared field by field when the run resumes. */
export interface RunPlan {
  version: 1;
  /** The dataset() definition and a digest of its arguments; absent for a pipeline built inline. */
  definition?: { name: string; args: string };
  /** A list source's item count and a digest of its items, or a file source's paths and sizes. */
  source: { kind: "list"; items: number; digest: string } | { kind: "files"; files: Array<{ path: string; size: number | null }> };
  stages: Array<{ shards: number; input: string; ops: string[]; output: string }>;
}

const RUN_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Checks a runId: 1 to 64 letters, digits, ".", "_" or "-" (it names a directory). */
export function validateRunId(runId: unknown): string {
  if (typeof runId !== "string" || !RUN_ID.test(runId) || runId === "." || runId === "..") {
    throw new ValidationError("runId", `must be 1 to 64 letters, digits, ".", "_" or "-", got ${JSON.stringify(runId)}`);
  }
  return runId;
}

/** A short digest of a value's encoding; a value the codec cannot encode (a sync run's list may hold anything) has none. */
function digest(value: unknown): string {
  try {
    return createHash("sha256").update(encodeValue(value)).digest("hex").slice(0, 32);
  } catch {
    return "(not encodable)";
  }
}

/** The plan of a run about to start: its definition, its source's fingerprint and its stages. */
export async function describePlan(ds: Dataset<unknown>, stages: readonly Stage[], sourceInputs: readonly ShardInput[]): Promise<RunPlan> {
  const source: RunPlan["source"] =
    ds.source.kind === "list"
      ? { kind: "list", items: ds.source.items.length, digest: digest(ds.source.items) }
      : {
          kind: "files",
          files: await Promise.all(
            sourceInputs.map(async (input) => {
              const path = input.kind === "file" ? input.path : "";
              return { path, size: (await storeFor(path).size(path)) ?? null };
            }),
          ),
        };
  // In this order because a difference is reported where it is first met: the most telling first.
  return {
    version: 1,
    source,
    stages: stages.map((stage) => ({
      shards: stage.numShards,
      input: stage.input.kind,
      ops: stage.ops.map((op) => op.kind),
      output: stage.output.kind === "write" ? `write ${stage.output.format} ${stage.output.pattern}` : stage.output.kind,
    })),
    ...(ds.origin ? { definition: { name: `${ds.origin.ref.module}#${ds.origin.ref.name}`, args: digest(ds.origin.args) } } : {}),
  };
}

/** The first place where two plans differ, as `path (recorded X, now Y)`; undefined when they match. */
export function planDifference(recorded: unknown, now: unknown, path = "plan"): string | undefined {
  if (Array.isArray(recorded) && Array.isArray(now)) {
    if (recorded.length !== now.length) return `${path}.length (recorded ${recorded.length}, now ${now.length})`;
    for (let i = 0; i < now.length; i++) {
      const difference = planDifference(recorded[i], now[i], `${path}[${i}]`);
      if (difference) return difference;
    }
    return undefined;
  }
  const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isRecord(recorded) && isRecord(now)) {
    for (const key of new Set([...Object.keys(now), ...Object.keys(recorded)])) {
      const difference = planDifference(recorded[key], now[key], `${path}.${key}`);
      if (difference) return difference;
    }
    return undefined;
  }
  const [a, b] = [JSON.stringify(recorded) ?? "nothing", JSON.stringify(now) ?? "nothing"];
  return a === b ? undefined : `${path} (recorded ${a}, now ${b})`;
}

/** `path` as a prefix that lists what lies below it. */
function below(path: string): string {
  return path.endsWith("/") ? path : `${path}/`;
}

/**
 * The manifest of one run with a runId. `open` checks what the run
 * directory already holds; `finishedShards` answers, stage by stage, the
 * shards a resumed run may skip; `record` saves a finished shard.
 */
export class RunManifest {
  private readonly store: ObjectStore;
  private readonly dir: string;
  /** Set once a stage had shards left to run: later stages' records were made from other inputs and are dropped. */
  private stale = false;

  private constructor(
    runDir: string,
    private readonly stageCount: number,
  ) {
    this.store = storeFor(runDir);
    this.dir = joinPath(runDir, "manifest");
  }

  /**
   * Opens the manifest of run `runId` in `runDir`, before the run creates
   * a shard. State left there without `resume` is an error; with
   * `resume`, a recorded plan must match `plan` (else `failed_precondition`
   * naming the first difference), and state without a plan (a run killed as
   * it started) is removed. Then the plan is recorded.
   */
  static async open(runDir: string, runId: string, plan: RunPlan, resume: boolean): Promise<RunManifest> {
    const manifest = new RunManifest(runDir, plan.stages.length);
    const { store } = manifest;
    const planPath = joinPath(manifest.dir, "plan.json");
    const existing = await store.list(below(runDir));
    if (existing.length > 0 && !resume) {
      throw new FlusterError(`run ${runId} already has state under ${runDir}; pass resume: true to continue it, or remove that directory to start over`, "already_exists");
    }
    if (existing.some((o) => o.path === planPath)) {
      let recorded: unknown;
      try {
        recorded = JSON.parse(Buffer.from(await store.readAll(planPath)).toString("utf8"));
      } catch (err) {
        throw new FlusterError(`run ${runId} cannot resume: its plan record ${planPath} cannot be read (${err instanceof Error ? err.message : String(err)}); remove ${runDir} to start over`, "failed_precondition", { cause: err });
      }
      const difference = planDifference(recorded, plan);
      if (difference) {
        throw new FlusterError(`run ${runId} cannot resume: this pipeline's plan differs from the one recorded at ${planPath}, at ${difference}; remove ${runDir} to start over`, "failed_precondition");
      }
      return manifest;
    }
    if (existing.length > 0) await store.removeTree(runDir);
    await store.writeAll(planPath, Buffer.from(`${JSON.stringify(plan, null, 2)}\n`));
    return manifest;
  }

  private stageDir(stage: number): string {
    return joinPath(this.dir, `stage-${stage}`);
  }

  /**
   * The recorded results of `stage`'s finished shards whose outputs are all
   * still there. When some shard is left to run, every later stage's
   * records are removed (they came from this stage's earlier outputs).
   */
  async finishedShards(stage: Stage, chunkDir: string): Promise<Map<number, ShardResult>> {
    const finished = new Map<number, ShardResult>();
    if (!this.stale) {
      const records = await this.store.list(below(this.stageDir(stage.index)));
      const chunks = new Map((await storeFor(chunkDir).list(below(chunkDir))).map((o) => [o.path, o.size]));
      for (const { path } of records) {
        const shard = Number(/shard-(\d+)$/.exec(path)?.[1] ?? NaN);
        if (!(shard < stage.numShards)) continue;
        const result = await this.readRecord(path);
        if (result && (await outputsExist(result, chunks))) finished.set(shard, result);
      }
    }
    if (finished.size < stage.numShards && !this.stale) {
      this.stale = true;
      for (let later = stage.index + 1; later < this.stageCount; later++) await this.store.removeTree(this.stageDir(later));
    }
    return finished;
  }

  /** Saves a finished shard's result (atomically: a killed driver leaves a whole record or none). */
  async record(stage: number, shard: number, result: ShardResult): Promise<void> {
    await this.store.writeAll(joinPath(this.stageDir(stage), `shard-${shard}`), encodeValue(result));
  }

  /** A record, or undefined when it cannot be read as a ShardResult (then the shard runs again). */
  private async readRecord(path: string): Promise<ShardResult | undefined> {
    try {
      const value = decodeValue(await this.store.readAll(path)) as ShardResult;
      const kind = (value as { output?: { kind?: unknown } } | null)?.output?.kind;
      return kind === "chunks" || kind === "partitions" || kind === "file" ? value : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Whether every chunk file (of the listed sizes) and output file a result names still exists. */
async function outputsExist(result: ShardResult, chunks: ReadonlyMap<string, number>): Promise<boolean> {
  const output = result.output;
  if (output.kind === "file") return (await storeFor(output.path).size(output.path)) !== undefined;
  const refs = output.kind === "chunks" ? output.refs : output.refs.flat();
  for (const ref of refs) {
    if (ref.kind !== "storage") continue;
    const size = chunks.get(ref.path) ?? (await storeFor(ref.path).size(ref.path));
    if (size !== ref.bytes) return false;
  }
  return true;
}
