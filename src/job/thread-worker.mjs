// Piscina worker of the threads context. tsx's loader, registered in the main
// thread, does not reach worker threads, so each registers its own before
// importing task modules (TypeScript included).
import { register } from "tsx/esm/api";

register();
const { runTask } = await import("./thread-runtime.ts");

export default runTask;
