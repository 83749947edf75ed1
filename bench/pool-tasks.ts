// The trivial task the WorkerPool benchmark runs, as a remote function.
import { remote } from "../src/core/remote.js";

export const square = remote(import.meta.url, function square(x: number) {
  return x * x;
});
