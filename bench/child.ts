// Runs one benchmark measurement in a fresh Node process, so no run inherits
// another's JIT state, heap or thread pool.
import { spawn } from "node:child_process";

/** Runs `node <args>`, stderr passed through; resolves with the JSON object its last stdout line holds. */
export function runChild(args: readonly string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      const last = out.trim().split("\n").pop() ?? "";
      if (code !== 0) return reject(new Error(`${args.join(" ")} exited with ${code}: ${out}`));
      resolve(JSON.parse(last) as Record<string, number>);
    });
  });
}
