// Preemption: room for higher-band tasks that placement left unplaced, found
// in room being freed or by stopping the fewest lower-band attempts.
import type { Priority } from "../../../core/job.js";
import { fits, type Amounts, type Need, type Slot } from "./amounts.js";
import { FirstFitTree } from "./first-fit-tree.js";
import type { Preemption, RunningAttempt } from "./types.js";

/** Band rank: 0 production, 1 interactive, 2 batch; a rank preempts only larger ranks. */
export function bandRank(priority: Priority): number {
  return priority === "production" ? 0 : priority === "batch" ? 2 : 1;
}

const BATCH = 2;
/**
 * Victim counts searched through an index; a task needing more victims than
 * this falls back to a scan of the workers whose total preemptible room fits.
 */
const INDEXED_VICTIMS = 3;
/** Lists this short are searched by a plain scan: building an index costs more than it saves. */
const SCAN_BELOW = 128;
/** A list's scans give way to a tree once they have read this many times its length. */
const SCAN_WORK = 1;
/** Workers compared on the tie-breaks (victim band, youngest) once the fewest victims is known. */
const TIE_SCAN = 8;
/** Room a claimed or victimless worker offers through a tree: nothing fits it. */
const NONE: Readonly<Amounts> = { cpu: -1, memory: -1, disk: -1, devices: -1 };

interface Victim {
  readonly attempt: RunningAttempt;
  readonly band: number;
  readonly need: Readonly<Amounts>;
}

/** One worker during the preemption phase. */
interface WorkerState {
  /** Free room plus room being freed, less what tasks claimed in this pass. */
  room: Amounts;
  /** Part of `room` that is being freed (stopping attempts): a claim on it is a wait, not free room. */
  readonly stopping: boolean;
  /** Its running attempts in victim order: lowest band first, larger usage first, youngest first. */
  readonly victims: readonly Victim[];
  /** Victims before this index are already preempted in this pass. */
  next: number;
  /** Victims with `band === BATCH`; they come first in victim order. */
  readonly batch: number;
  /** The job whose task claimed room here: the rest is not offered to other jobs in this pass. */
  owner?: string;
}

/** Tree kinds: room alone, room plus k batch victims, room plus k victims of any lower band, and the totals. */
interface TreeKind {
  /** Index into the pass's per-kind tables. */
  readonly id: number;
  /** Victims counted; Infinity counts all. */
  readonly victims: number;
  readonly batchOnly: boolean;
}

/** Room alone; k batch victims; k victims of either lower band; all batch victims; all victims. */
const ROOM: TreeKind = { id: 0, victims: 0, batchOnly: false };
const BATCH_VICTIMS: readonly TreeKind[] = Array.from({ length: INDEXED_VICTIMS + 1 }, (_, k) => ({ id: 1 + 2 * k, victims: k, batchOnly: true }));
const ANY_VICTIMS: readonly TreeKind[] = Array.from({ length: INDEXED_VICTIMS + 1 }, (_, k) => ({ id: 2 + 2 * k, victims: k, batchOnly: false }));
const ALL_BATCH: TreeKind = { id: 3 + 2 * INDEXED_VICTIMS, victims: Infinity, batchOnly: true };
const ALL: TreeKind = { id: 4 + 2 * INDEXED_VICTIMS, victims: Infinity, batchOnly: false };
const KINDS = 5 + 2 * INDEXED_VICTIMS;
const ALL_KINDS: readonly TreeKind[] = [ROOM, ...BATCH_VICTIMS, ...ANY_VICTIMS, ALL_BATCH, ALL];
/** Per band rank below batch, the victim kinds searched for k victims (index k). */
const VICTIM_KINDS: ReadonlyArray<ReadonlyArray<readonly TreeKind[]>> = [0, 1].map((band) =>
  Array.from({ length: INDEXED_VICTIMS + 1 }, (_, k) => {
    const batch = BATCH_VICTIMS[k];
    const any = ANY_VICTIMS[k];
    return band === 0 ? [batch, any].filter((kind): kind is TreeKind => kind !== undefined) : batch ? [batch] : [];
  }),
);

/**
 * One distinct list of eligible workers (equal lists from different job
 * kinds share it): its indexes by tree kind and its cursors by shape.
 */
interface ListState {
  readonly list: readonly Slot[];
  readonly trees: Array<TreeEntry | undefined>;
  /**
   * Per shape key and tree kind: no worker on the list before this position
   * fits. A worker's values only shrink (a claim hides it from every tree),
   * so the cursor stays true and repeated searches start there; a failed
   * gang's undo restores the cursors it moved.
   */
  readonly cursors: Map<string, Int32Array>;
  /** Each worker's position on the list (-1 when absent), made on a failed gang's first undo. */
  positions?: Int32Array;
}

/** What a claim for one task did, so a gang that does not fit whole can undo it. */
interface Undo {
  index: number;
  room: Amounts;
  next: number;
  owner: string | undefined;
}

/** One job's part of a claim: its tasks' shape and count, and the workers it may use. */
export interface ClaimPart {
  jobId: string;
  band: number;
  need: Need;
  count: number;
  /** Its eligible workers, in its ranking. */
  list: readonly Slot[];
  eligible: (slot: Slot) => boolean;
  /** Names `list`: equal keys, equal lists. */
  eligibleKey: string;
}

/** A job's claims in this pass, for its pending reason. */
export interface Claims {
  /** Attempts preempted for it. */
  victims: number;
  /** Workers where it waits for room being freed (no new victims). */
  waitingOn: string[];
}

/** Free room plus room being freed on each worker, and the lower-band attempts that could give more. */
export class Preemptor {
  private readonly states: WorkerState[];
  /** Per tree kind, what each worker (by order) offers through it; updated in place. */
  private readonly values: Array<Amounts[] | undefined> = new Array<Amounts[] | undefined>(KINDS);
  /**
   * Per distinct list of eligible workers (in the job's ranking) and tree
   * kind, a first-fit index over those workers. A claim only lowers values,
   * so it does not refresh these (stale maxima are upper bounds, the search
   * re-reads leaves); a failed gang's undo raises them again and refreshes
   * every index. Lists are found by identity, then by content.
   */
  private readonly lists = new Map<readonly Slot[], ListState>();
  private readonly listsByHash = new Map<string, ListState[]>();
  private readonly listStates: ListState[] = [];
  /** The trees of the claim in progress's eligible workers, by kind. */
  private current: Array<TreeEntry | undefined> = [];
  /** The eligible workers of the claim in progress, in the job's ranking. */
  private list: readonly Slot[] = [];
  /** Per eligible-workers key and band, shapes that found no room: total room only shrinks, so none will. */
  private readonly hopeless = new Map<string, Array<Set<string>>>();
  private readonly owned = new Map<string, number[]>();
  readonly preemptions: Preemption[] = [];
  readonly claims = new Map<string, Claims>();
  private undo: Undo[] | undefined;
  /** The claim in progress's cursors (its list's, for its shape), by tree kind. */
  private cursors: Int32Array = new Int32Array(KINDS);
  private cursorUndo: Array<[Int32Array, number, number]> | undefined;

  private readonly anyStopping: boolean;
  /** Tasks the claim in progress asks for. */
  private claiming = 0;

  constructor(private readonly slots: readonly Slot[]) {
    this.states = slots.map((slot) => stateOf(slot));
    this.anyStopping = this.states.some((state) => state.stopping);
    this.anyVictims = this.states.some((state) => state.victims.length > 0);
    this.anyBatch = this.states.some((state) => state.batch > 0);
  }

  private readonly anyVictims: boolean;
  private readonly anyBatch: boolean;

  /**
   * Claims room for `count` tasks of a job (all or none), among the workers
   * `eligible` admits (`list`, in the job's ranking). Returns whether it did.
   */
  claim(jobId: string, band: number, need: Need, count: number, list: readonly Slot[], eligible: (slot: Slot) => boolean, eligibleKey: string): boolean {
    return this.claimAll(jobId, [{ jobId, band, need, count, list, eligible, eligibleKey }]);
  }

  /**
   * Claims room for every part (a job group's jobs), all or none. `owner`
   * names who holds the claimed workers: room left there after a part's
   * claim is offered to the other parts, not to other jobs.
   */
  claimAll(owner: string, parts: readonly ClaimPart[]): boolean {
    const single = parts.length === 1;
    for (const part of parts) {
      // Nothing stopping and nothing this band may preempt: no index is worth building.
      if (!this.anyStopping && !(part.band === 0 ? this.anyVictims : part.band === 1 && this.anyBatch)) return false;
      if (this.hopeless.get(part.eligibleKey)?.[part.band]?.has(part.need.key)) return false;
    }
    this.undo = [];
    this.cursorUndo = [];
    const preempted = this.preemptions.length;
    const claimed = new Map<string, Claims>();
    let failed: { part: ClaimPart; done: number } | undefined;
    for (const part of parts) {
      const claims = { victims: 0, waitingOn: [] as string[] };
      claimed.set(part.jobId, claims);
      this.list = part.list;
      this.claiming = single ? part.count : Infinity;
      const listState = this.listState(part.list);
      this.current = listState.trees;
      let cursors = listState.cursors.get(part.need.key);
      if (!cursors) listState.cursors.set(part.need.key, (cursors = new Int32Array(KINDS)));
      this.cursors = cursors;
      let done = 0;
      for (; done < part.count; done++) {
        const found = this.find(owner, part.band, part.need, part.eligible);
        if (!found) break;
        this.take(owner, part.jobId, found.index, found.victims, part.need, claims);
      }
      if (done < part.count) {
        failed = { part, done };
        break;
      }
    }
    if (failed) {
      // Undo in reverse: each entry holds the state before its change.
      for (const u of this.undo.reverse()) {
        const state = this.states[u.index];
        if (!state) continue;
        state.room = u.room;
        state.next = u.next;
        if (u.owner === undefined) delete state.owner;
        else state.owner = u.owner;
        this.refresh(u.index, true);
      }
      this.preemptions.length = preempted;
      this.undo = undefined;
      for (const [cursors, kind, value] of this.cursorUndo.reverse()) cursors[kind] = value;
      this.cursorUndo = undefined;
      const owned = this.owned.get(owner)?.filter((index) => this.states[index]?.owner === owner);
      if (owned) this.owned.set(owner, owned);
      // Alone and finding nothing, the kind is hopeless (total room only shrinks);
      // within a group, other parts' claims may have been what was missing.
      if (single && failed.done === 0) {
        let byBand = this.hopeless.get(failed.part.eligibleKey);
        if (!byBand) this.hopeless.set(failed.part.eligibleKey, (byBand = []));
        (byBand[failed.part.band] ??= new Set()).add(failed.part.need.key);
      }
      return false;
    }
    this.undo = undefined;
    this.cursorUndo = undefined;
    for (const [jobId, claims] of claimed) {
      const before = this.claims.get(jobId);
      if (before) {
        before.victims += claims.victims;
        before.waitingOn.push(...claims.waitingOn);
      } else this.claims.set(jobId, claims);
    }
    return true;
  }

  /** The worker for one task: the job's own claimed room, then room being freed, then the fewest victims. */
  private find(owner: string, band: number, need: Need, eligible: (slot: Slot) => boolean): { index: number; victims: number } | undefined {
    // Workers this job already claimed are hidden from the trees (their rest is
    // not offered to other jobs), so they are weighed here, victims included.
    let own: { index: number; victims: number } | undefined;
    for (const index of this.owned.get(owner) ?? []) {
      const slot = this.slots[index];
      const victims = slot && eligible(slot) ? this.victimsNeeded(index, band, need) : undefined;
      if (victims !== undefined && (!own || victims.count < own.victims)) own = { index, victims: victims.count };
    }
    if (own?.victims === 0) return own;
    // Where even every victim's room is not enough, no fewer will do: one
    // index answers that before the per-count ones are built.
    if (band !== BATCH && this.first(band === 1 ? ALL_BATCH : ALL, need, 0) < 0) return own;
    // Room alone fits only where attempts are stopping, or for a gang's later
    // tasks (placement fits every other task that free room could hold).
    if (this.anyStopping || this.claiming > 1) {
      const free = this.first(ROOM, need, 0);
      if (free >= 0) return { index: this.orderAt(free), victims: 0 };
    }
    if (band === BATCH) return undefined;
    for (let k = 1; k <= INDEXED_VICTIMS; k++) {
      if (own?.victims === k) return own;
      // Batch victims come first on a worker, so k batch victims are the lowest band k victims can have.
      for (const kind of VICTIM_KINDS[band]?.[k] ?? []) {
        const found = this.youngest(kind, need, k);
        if (found >= 0) return { index: found, victims: k };
      }
    }
    const scanned = this.scan(band, need);
    return own && (!scanned || own.victims <= scanned.victims) ? own : scanned;
  }

  /** How many of a worker's next victims (of bands below `band`) a task needs, and the highest band among them; undefined when all are not enough. */
  private victimsNeeded(index: number, band: number, need: Need): { count: number; topBand: number } | undefined {
    const state = this.states[index];
    if (!state) return undefined;
    let { cpu, memory, disk, devices } = state.room;
    let count = 0;
    let topBand = BATCH;
    while (!(cpu >= need.cpu && memory >= need.memory && disk >= need.disk && devices >= need.devices)) {
      const victim = state.victims[state.next + count];
      if (!victim || victim.band <= band) return undefined;
      cpu += victim.need.cpu;
      memory += victim.need.memory;
      disk += victim.need.disk;
      devices += victim.need.devices;
      topBand = Math.min(topBand, victim.band);
      count++;
    }
    return { count, topBand };
  }

  /** Among the first workers where `kind` fits, the one whose victims are youngest (their oldest started last). */
  private youngest(kind: TreeKind, need: Need, k: number): number {
    let best = -1;
    let bestStart = -Infinity;
    let from = 0;
    for (let seen = 0; seen < TIE_SCAN; seen++) {
      const position = this.first(kind, need, from);
      if (position < 0) break;
      const index = this.orderAt(position);
      const start = this.oldestStart(index, k);
      if (start > bestStart) {
        best = index;
        bestStart = start;
      }
      from = position + 1;
    }
    return best;
  }

  /** Every worker whose total preemptible room fits: the fewest victims, then lowest victim band, then youngest. */
  private scan(band: number, need: Need): { index: number; victims: number } | undefined {
    const kind = band === 1 ? ALL_BATCH : ALL;
    let best: { index: number; victims: number; topBand: number; start: number } | undefined;
    let fewest = 0;
    for (let position = this.first(kind, need, 0); position >= 0; position = this.first(kind, need, position + 1)) {
      const index = this.orderAt(position);
      const needed = this.victimsNeeded(index, band, need);
      if (!needed) continue;
      const { count: k, topBand } = needed;
      const start = this.oldestStart(index, k);
      if (!best || k < best.victims || (k === best.victims && (topBand > best.topBand || (topBand === best.topBand && start > best.start)))) {
        best = { index, victims: k, topBand, start };
      }
      // No worker needs fewer than this (the indexes found none with fewer):
      // compare a few such for the tie-breaks, not every worker.
      if (best.victims === INDEXED_VICTIMS + 1 && ++fewest >= TIE_SCAN) break;
    }
    return best && { index: best.index, victims: best.victims };
  }

  private oldestStart(index: number, k: number): number {
    const state = this.states[index];
    let start = Infinity;
    for (let i = 0; i < k; i++) start = Math.min(start, state?.victims[(state?.next ?? 0) + i]?.attempt.startedAt ?? Infinity);
    return start;
  }

  private take(owner: string, jobId: string, index: number, victims: number, need: Need, claims: Claims): void {
    const state = this.states[index];
    const slot = this.slots[index];
    if (!state || !slot) return;
    this.undo?.push({ index, room: { ...state.room }, next: state.next, owner: state.owner });
    for (let i = 0; i < victims; i++) {
      const victim = state.victims[state.next + i];
      if (!victim) continue;
      add(state.room, victim.need, 1);
      this.preemptions.push({ attemptId: victim.attempt.attemptId, workerId: slot.worker.workerId, forJobId: jobId });
    }
    if (victims === 0 && state.stopping && !fits(slot, need) && !claims.waitingOn.includes(slot.worker.workerId)) claims.waitingOn.push(slot.worker.workerId);
    claims.victims += victims;
    state.next += victims;
    add(state.room, need, -1);
    if (state.owner === undefined) {
      state.owner = owner;
      const list = this.owned.get(owner);
      if (list) list.push(index);
      else this.owned.set(owner, [index]);
    }
    this.refresh(index);
  }

  private orderAt(position: number): number {
    return this.list[position]?.order ?? -1;
  }

  /** Position (in the claim's list) of the first worker at or after `from` where `kind` fits `need`, or -1. A search from 0 starts at, and moves, the cursor. */
  private first(kind: TreeKind, need: Need, from: number): number {
    const tree = this.treeOf(kind);
    const cursors = this.cursors;
    const start = from === 0 ? (cursors[kind.id] ?? 0) : from;
    const found = start < this.list.length ? tree.findFirst(need, start) : -1;
    if (from === 0) {
      const cursor = found < 0 ? this.list.length : found;
      if (cursor !== start) {
        this.cursorUndo?.push([cursors, kind.id, start]);
        cursors[kind.id] = cursor;
      }
    }
    return found;
  }

  private valuesOf(kind: TreeKind): Amounts[] {
    let values = this.values[kind.id];
    if (!values) {
      values = this.states.map((state) => valueOf(state, kind, { cpu: 0, memory: 0, disk: 0, devices: 0 }));
      this.values[kind.id] = values;
    }
    return values;
  }

  /**
   * The index for `kind` over the claim's workers. A list's first searches
   * scan instead, until they have read as many workers as the list holds:
   * most job kinds that find nothing ask once and are then known hopeless,
   * cursors keep many repeated scans short, and a scan costs less than
   * building a tree.
   */
  private treeOf(kind: TreeKind): FitIndex {
    let entry = this.current[kind.id];
    const values = this.valuesOf(kind);
    const list = this.list;
    if (!entry) {
      entry = { tree: new LinearFit(list, values), searches: 0 };
      this.current[kind.id] = entry;
    } else if (entry.tree instanceof LinearFit && list.length >= SCAN_BELOW && entry.tree.scanned >= SCAN_WORK * list.length) {
      entry.tree = new FirstFitTree(list.map((slot) => values[slot.order] ?? NONE));
    }
    return entry.tree;
  }

  /** Re-reads a worker's values; `raised` (an undo) also refreshes every index, whose maxima may now be too low. */
  private refresh(index: number, raised = false): void {
    const state = this.states[index];
    if (!state) return;
    for (const kind of ALL_KINDS) {
      const value = this.values[kind.id]?.[index];
      if (value) valueOf(state, kind, value);
    }
    if (!raised) return;
    for (const listState of this.listStates) {
      let positions = listState.positions;
      if (!positions) {
        const made = new Int32Array(this.slots.length).fill(-1);
        listState.list.forEach((slot, i) => (made[slot.order] = i));
        positions = listState.positions = made;
      }
      const position = positions[index] ?? -1;
      if (position < 0) continue;
      for (const entry of listState.trees) entry?.tree.refresh(position);
    }
  }

  /** The state of a list of eligible workers: the same for every equal list. */
  private listState(list: readonly Slot[]): ListState {
    const known = this.lists.get(list);
    if (known) return known;
    let hash = 0x811c9dc5;
    for (const slot of list) hash = Math.imul(hash ^ slot.order, 0x01000193);
    const hashKey = `${list.length} ${hash >>> 0}`;
    const candidates = this.listsByHash.get(hashKey) ?? [];
    let found = candidates.find((other) => other.list.length === list.length && other.list.every((slot, i) => slot === list[i]));
    if (!found) {
      found = { list, trees: [], cursors: new Map() };
      candidates.push(found);
      this.listsByHash.set(hashKey, candidates);
      this.listStates.push(found);
    }
    this.lists.set(list, found);
    return found;
  }
}

interface FitIndex {
  findFirst(need: Need, from: number): number;
  refresh(index: number): void;
}

/** First fit by a plain scan: short lists, and a job kind's first search. */
class LinearFit implements FitIndex {
  constructor(
    private readonly list: readonly Slot[],
    private readonly values: readonly Readonly<Amounts>[],
  ) {}

  /** Workers read so far. */
  scanned = 0;

  findFirst(need: Need, from: number): number {
    const { list, values } = this;
    for (let i = from; i < list.length; i++) {
      const value = values[list[i]?.order ?? -1];
      if (value && fits(value, need)) {
        this.scanned += i - from + 1;
        return i;
      }
    }
    this.scanned += list.length - from;
    return -1;
  }

  refresh(): void {}
}

interface TreeEntry {
  tree: FitIndex;
  /** Searches through a LinearFit so far. */
  searches: number;
}

/** What a worker offers through one tree, written into `out`: its room plus the victims the kind counts. */
function valueOf(state: WorkerState, kind: TreeKind, out: Amounts): Amounts {
  const limit = kind.batchOnly ? state.batch : state.victims.length;
  const end = kind.victims === Infinity ? limit : state.next + kind.victims;
  if (state.owner !== undefined || end > limit || end < state.next) return Object.assign(out, NONE);
  out.cpu = state.room.cpu;
  out.memory = state.room.memory;
  out.disk = state.room.disk;
  out.devices = state.room.devices;
  for (let i = state.next; i < end; i++) {
    const victim = state.victims[i];
    if (victim) add(out, victim.need, 1);
  }
  return out;
}

function add(to: Amounts, amounts: Readonly<Amounts>, sign: 1 | -1): void {
  to.cpu += sign * amounts.cpu;
  to.memory += sign * amounts.memory;
  to.disk += sign * amounts.disk;
  to.devices += sign * amounts.devices;
}

function stateOf(slot: Slot): WorkerState {
  const { worker } = slot;
  const devicesCounted = worker.capacity.deviceType !== "cpu";
  const amounts = (u: { cpu: number; memory: number; disk: number; deviceCount: number }): Amounts => ({
    cpu: Math.round(u.cpu * 1000),
    memory: u.memory,
    disk: u.disk,
    devices: devicesCounted ? u.deviceCount : 0,
  });
  const room: Amounts = { cpu: slot.cpu, memory: slot.memory, disk: slot.disk, devices: slot.devices };
  const stopping = worker.stopping ? amounts(worker.stopping) : undefined;
  if (stopping) add(room, stopping, 1);
  const victims = (worker.running ?? [])
    .map((attempt) => ({ attempt, band: bandRank(attempt.priority), need: amounts(attempt.usage) }))
    .filter((v) => v.band > 0)
    .sort(
      (a, b) =>
        b.band - a.band ||
        b.need.devices - a.need.devices || b.need.cpu - a.need.cpu || b.need.memory - a.need.memory || b.need.disk - a.need.disk ||
        b.attempt.startedAt - a.attempt.startedAt ||
        (a.attempt.attemptId < b.attempt.attemptId ? -1 : a.attempt.attemptId > b.attempt.attemptId ? 1 : 0),
    );
  const batch = victims.filter((v) => v.band === BATCH).length;
  const hasStopping = stopping !== undefined && (stopping.cpu > 0 || stopping.memory > 0 || stopping.disk > 0 || stopping.devices > 0);
  return { room, stopping: hasStopping, victims, next: 0, batch };
}
