// A pass's candidate list for one kind of job: its eligible workers in
// placement order, the first-fit index over them, and memos for reasons.
import { maxOver, tasksThatFit, type Amounts, type Need, type Slot } from "./amounts.js";
import { FirstFitTree } from "./first-fit-tree.js";

/** Workers a kind of job may use, in placement order, with this pass's memos. */
export class Candidates {
  private tree?: FirstFitTree;
  /**
   * Per demand shape, the first slot that may still take one more task of
   * it. First fit put the last such task there, so no slot before it had
   * room, and free space only shrinks within a pass. A shape that fits
   * nowhere has its cursor at the end, so identical demands later in the
   * pass skip the search.
   */
  private readonly cursors = new Map<string, number>();
  private machineShapes?: Map<Readonly<Amounts>, number>;
  private freeMax?: Amounts;
  private readonly idleFit = new Map<string, number>();

  constructor(readonly slots: readonly Slot[]) {}

  get index(): FirstFitTree {
    return (this.tree ??= new FirstFitTree(this.slots));
  }

  private positions?: Map<Slot, number>;

  /** Re-reads one slot's free space into this list's index, if the slot is on the list. */
  refreshSlot(slot: Slot): void {
    if (!this.tree) return;
    this.positions ??= new Map(this.slots.map((s, i) => [s, i]));
    const index = this.positions.get(slot);
    if (index !== undefined) this.tree.refresh(index);
  }

  cursor(need: Need): number {
    return this.cursors.get(need.key) ?? 0;
  }

  setCursor(need: Need, index: number): void {
    this.cursors.set(need.key, index);
  }

  /** Largest capacity per resource over these workers. */
  largestCapacity(): Amounts {
    return maxOver([...this.shapes().keys()]);
  }

  /**
   * Distinct machine capacities with their counts. Clusters have few machine
   * shapes, so questions about idle machines are answered per shape.
   */
  private shapes(): Map<Readonly<Amounts>, number> {
    if (!this.machineShapes) {
      this.machineShapes = new Map();
      for (const { capacity } of this.slots) this.machineShapes.set(capacity, (this.machineShapes.get(capacity) ?? 0) + 1);
    }
    return this.machineShapes;
  }

  /** Largest free amount per resource; call once placement is over (the first answer is kept). */
  mostFree(): Amounts {
    return (this.freeMax ??= maxOver(this.slots));
  }

  /** How many tasks of `need` these workers could hold if all were idle. */
  fitsWhenIdle(need: Need): number {
    let total = this.idleFit.get(need.key);
    if (total === undefined) {
      total = 0;
      for (const [capacity, count] of this.shapes()) total += count * tasksThatFit(capacity, need);
      this.idleFit.set(need.key, total);
    }
    return total;
  }
}
