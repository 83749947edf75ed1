// The one place for code that tests share (test/helpers/ holds no *.test.ts,
// so the runner never runs it). This index gathers the light helpers —
// waiting (on core's pollUntil, which loads nothing else of src/), ports,
// child processes and example runs. Helpers built on the rest of src/ are
// imported from their own file, so that a test loads only
// what it uses: local-cluster.ts (LocalCluster fixtures, job logs) and
// codec.ts (the codec's assertions and arbitraries).
export { eventually, type EventuallyOptions } from "./eventually.js";
export { freePort } from "./ports.js";
export { REPO_ROOT } from "./paths.js";
export {
  cleanEnv,
  collectOutput,
  isGone,
  killAll,
  processesWith,
  runNode,
  stopProcess,
  survivors,
  waitForLine,
  type NodeResult,
  type RunNodeOptions,
} from "./processes.js";
export { runExample, type ExampleResult, type RunExampleOptions } from "./examples.js";
export { flusterErrorOf } from "./rejects.js";
