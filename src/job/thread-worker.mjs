// Piscina worker of the threads context. tsx's loader, registered in the main
// thread, does not reach worker threads, so each registers its own before
// importing task modules (TypeScript included). The runtime is ./thread-runtime.js
// next to this file under dist/; under src/, tsx maps that name to the .ts file.
import { register } from "tsx/esm/api";

register();
const { runTask } = await import("./thread-runtime.js");

export default runTask;
