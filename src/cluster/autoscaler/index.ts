// The autoscaler: a pure decision (demand in, actions out) that the
// controller's loop applies through the platforms. See decide.ts for the rules.
export { decideScaling } from "./decide.js";
export { ALLOCATION_BACKOFF, backoffAfterFailure, nextBackoff } from "./backoff.js";
export { VM_STATES } from "./types.js";
export type {
  AllocateAction,
  AutoscalerAction,
  AutoscalerInput,
  GroupBackoff,
  GroupStatus,
  MachineShape,
  PendingDemand,
  ReleaseAction,
  ScaleGroup,
  ScalingDecision,
  UnfittableDemand,
  VmRecord,
  VmState,
} from "./types.js";
