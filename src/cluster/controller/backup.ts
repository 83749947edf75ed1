// `fluster controller backup`: an online copy of the controller's state
// database, taken with SQLite's backup API from another process while the
// controller runs (a read-only connection; WAL lets the controller write on).
// The copy is one self-contained SQLite file: jobs, tasks, attempts, workers,
// endpoints and whatever else the controller keeps in its database. A
// controller started on a state directory holding it as `controller.sqlite`
// carries on from the moment of the backup.
import Database from "better-sqlite3";
import { existsSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { FlusterError } from "../../core/errors.js";

/** The database file inside a controller's state directory. */
export const STATE_DATABASE = "controller.sqlite";

/** What a backup wrote. */
export interface BackupSummary {
  /** Absolute path of the copy. */
  file: string;
  bytes: number;
  jobs: number;
  workers: number;
  endpoints: number;
  /** Schema version of the copy (`PRAGMA user_version`). */
  schemaVersion: number;
}

/**
 * Copies the state database of `stateDir` to `file` (which must not exist),
 * consistently even while a controller writes to it. The copy is written
 * next to `file` and renamed into place, so `file` is whole or absent.
 */
export async function backupStateDatabase(stateDir: string, file: string): Promise<BackupSummary> {
  const source = join(stateDir, STATE_DATABASE);
  const target = resolve(file);
  if (!existsSync(source)) throw new FlusterError(`no controller state database at ${resolve(source)}: pass the controller's --state-dir`, "not_found");
  if (existsSync(target)) throw new FlusterError(`${target} already exists: remove it or choose another file name`, "already_exists");
  if (!existsSync(dirname(target))) throw new FlusterError(`the directory ${dirname(target)} does not exist`, "not_found");
  const partial = `${target}.partial-${process.pid}`;
  let db: Database.Database;
  try {
    db = new Database(source, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new FlusterError(`cannot open ${resolve(source)} to back it up: ${(err as Error).message}`, "unavailable", { cause: err });
  }
  try {
    db.pragma("busy_timeout = 5000");
    await db.backup(partial);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new FlusterError(`backing up ${resolve(source)} to ${target} failed: ${(err as Error).message}`, "unavailable", { cause: err });
  } finally {
    db.close();
  }
  const summary = summarize(partial);
  renameSync(partial, target);
  return { ...summary, file: target, bytes: statSync(target).size };
}

/** Counts what a copy holds (and proves it opens and passes SQLite's integrity check). */
function summarize(path: string): Omit<BackupSummary, "file" | "bytes"> {
  const copy = new Database(path, { fileMustExist: true });
  try {
    const integrity = copy.pragma("integrity_check", { simple: true });
    if (integrity !== "ok") throw new FlusterError(`the backup copy ${path} fails SQLite's integrity check: ${String(integrity)}`, "internal");
    // A copy of a WAL database is WAL too; one file with no -wal beside it is easier to move around.
    copy.pragma("journal_mode = DELETE");
    const count = (table: string) => (copy.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return { jobs: count("jobs"), workers: count("workers"), endpoints: count("endpoints"), schemaVersion: copy.pragma("user_version", { simple: true }) as number };
  } catch (err) {
    copy.close();
    rmSync(path, { force: true });
    throw err;
  } finally {
    if (copy.open) copy.close();
  }
}
