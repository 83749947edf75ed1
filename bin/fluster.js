#!/usr/bin/env node
// The `fluster` command. Fluster ships TypeScript sources, so this registers
// tsx's ESM loader in-process and then runs src/cli/main.ts: no build step.
import { register } from "tsx/esm/api";

// tsconfig: false so tsx does not pick up whatever tsconfig.json lies in the
// caller's working directory; our sources need none of its settings.
register({ tsconfig: false });
await import("../src/cli/main.ts");
