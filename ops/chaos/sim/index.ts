export { type CheckChaosOptions, checkChaos } from './check.js';
export { type ShrinkOptions, type ShrinkResult, shrink } from './shrink.js';
export {
  type ModelFaultState,
  type RunOptions,
  type RunResult,
  type SimContext,
  type SimResult,
  type SimulateOptions,
  simulate,
  type Workload,
  type WorkloadOrigin,
} from './simulate.js';
export { type RegisterWorkloadOptions, registerWorkload } from './workloads.js';
