// The RL run's shared state: two actors hosted by the coordinator job and
// found BY NAME by the trainer and the rollout workers. Plain classes — any
// object's methods can be served by an ActorServer.

/** Names the coordinator registers its actors under (in the run's namespace). */
export const CURRICULUM = "curriculum";
export const WEIGHTS = "weight-coordinator";

/** One unit of rollout work. */
export interface Task {
  taskId: number;
  lesson: string;
  difficulty: number;
}

/** What the trainer consumes for one step: the rewards reported since its last step. */
export interface RewardBatch {
  count: number;
  meanReward: number;
  difficulty: number;
  workers: string[];
}

export interface CurriculumStats {
  reports: number;
  meanReward: number;
  difficulty: number;
  rewardsByWorker: Record<string, number>;
}

/** A published set of weights; `version` counts training steps. */
export interface Checkpoint {
  version: number;
  weights: number[];
  publishedAt: Date;
}

const LESSONS = ["arithmetic", "algebra", "geometry"];
/** Rewards looked at before the difficulty changes. */
const WINDOW = 6;
const MAX_DIFFICULTY = 10;

/**
 * Hands out tasks, collects rewards and adapts the difficulty: a curriculum
 * keeps rollouts in the zone where they still teach the model something.
 *
 * Register it with `maxConcurrency > 1`: `takeBatch()` and `waitForWorkers()`
 * wait for reports, which must keep arriving meanwhile. Methods never
 * interleave in the middle (JavaScript runs one at a time), so no locks.
 */
export class CurriculumActor {
  private difficulty = 1;
  private nextTaskId = 0;
  private reports = 0;
  private rewardSum = 0;
  private readonly rewardsByWorker = new Map<string, number>();
  /** Rewards the trainer has not consumed yet. */
  private pending: Array<{ workerId: string; reward: number }> = [];
  private window: number[] = [];
  private wakeUps: Array<() => void> = [];

  nextTask(): Task {
    const taskId = this.nextTaskId++;
    return { taskId, lesson: LESSONS[taskId % LESSONS.length] ?? "arithmetic", difficulty: this.difficulty };
  }

  report(workerId: string, reward: number): void {
    if (!Number.isFinite(reward) || reward < 0 || reward > 1) throw new RangeError(`reward must be in [0, 1], got ${reward}`);
    this.reports += 1;
    this.rewardSum += reward;
    this.rewardsByWorker.set(workerId, (this.rewardsByWorker.get(workerId) ?? 0) + 1);
    this.pending.push({ workerId, reward });
    this.adapt(reward);
    for (const wake of this.wakeUps.splice(0)) wake();
  }

  /** Waits (up to `timeoutSeconds`) until `count` different workers have reported; returns their ids. */
  async waitForWorkers(count: number, timeoutSeconds: number): Promise<string[]> {
    await this.until(() => this.rewardsByWorker.size >= count, timeoutSeconds, `${count} rollout worker(s) to report`);
    return [...this.rewardsByWorker.keys()].sort();
  }

  /** Waits (up to `timeoutSeconds`) for at least `minSize` unconsumed rewards, and consumes them. */
  async takeBatch(minSize: number, timeoutSeconds: number): Promise<RewardBatch> {
    await this.until(() => this.pending.length >= minSize, timeoutSeconds, `${minSize} reward(s)`);
    const batch = this.pending.splice(0);
    const meanReward = batch.reduce((sum, r) => sum + r.reward, 0) / batch.length;
    return { count: batch.length, meanReward, difficulty: this.difficulty, workers: [...new Set(batch.map((r) => r.workerId))].sort() };
  }

  stats(): CurriculumStats {
    return {
      reports: this.reports,
      meanReward: this.reports > 0 ? this.rewardSum / this.reports : 0,
      difficulty: this.difficulty,
      rewardsByWorker: Object.fromEntries([...this.rewardsByWorker].sort(([a], [b]) => a.localeCompare(b))),
    };
  }

  /** Too easy → harder; too hard → easier; judged over a short window of recent rewards. */
  private adapt(reward: number): void {
    this.window.push(reward);
    if (this.window.length < WINDOW) return;
    const mean = this.window.reduce((a, b) => a + b, 0) / this.window.length;
    if (mean > 0.7 && this.difficulty < MAX_DIFFICULTY) this.difficulty += 1;
    else if (mean < 0.3 && this.difficulty > 1) this.difficulty -= 1;
    this.window = [];
  }

  /** Resolves once `ready()` holds, re-checking after each report; rejects after `timeoutSeconds`. */
  private async until(ready: () => boolean, timeoutSeconds: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    while (!ready()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`curriculum: timed out after ${timeoutSeconds}s waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wakeUps.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/**
 * The latest weights. The trainer publishes, rollout workers poll: a rollout
 * never waits for training, it just picks up a newer version when one exists.
 */
export class WeightCoordinator {
  private current: Checkpoint;

  constructor(initialWeights: number[]) {
    this.current = { version: 0, weights: [...initialWeights], publishedAt: new Date() };
  }

  publish(version: number, weights: number[]): Checkpoint {
    // Versions only move forward: a slow, restarted trainer must not roll the policy back.
    if (!Number.isInteger(version) || version <= this.current.version) {
      throw new RangeError(`version must be a whole number above ${this.current.version}, got ${version}`);
    }
    this.current = { version, weights: [...weights], publishedAt: new Date() };
    return this.current;
  }

  latest(): Checkpoint {
    return this.current;
  }
}
