/**
 * Chaos testing (`troupe/chaos`): fault plans as data, Jepsen-style histories, checkers, a
 * deterministic whole-cluster simulation with shrinking, and reports.
 * @packageDocumentation
 */
export {
  type Checker,
  checkLinearizable,
  counterModel,
  invariant,
  type KeyResult,
  type LinearizableOptions,
  type LivenessOptions,
  linearizable,
  livenessAfterHeal,
  type Model,
  type NoDuplicateEffectsOptions,
  type NoLostWritesOptions,
  noDuplicateEffects,
  noLostWrites,
  registerModel,
  runCheckers,
  sagaAtomicity,
  singleActivation,
  type Verdict,
  type VerdictKind,
  type WorkflowCheckOptions,
  workflowStepsOnce,
  worst,
} from './checkers/index.js';
export {
  type FaultWindow,
  faultWindows,
  type History,
  type HistoryRecorder,
  historyJson,
  historyRecorder,
  type LogEntry,
  type Op,
  type OpType,
  outcome,
  type Pair,
  pairs,
  parseHistory,
} from './history/index.js';
export {
  describeFault,
  type Fault,
  type FaultInput,
  type FaultKind,
  FaultSchema,
  faultEnd,
  type Plan,
  type PlanInput,
  PlanSchema,
  parsePlan,
  RandomFaultsSchema,
  schedule,
} from './plan/index.js';
export {
  type NetFault,
  type NetLab,
  type NetLabOptions,
  netLabDefaults,
  netLabUnavailable,
  openNetLab,
  removeStaleNetLabs,
} from './real/netlab.js';
export { htmlReport, type RunReport, summary } from './report/index.js';
export {
  type CheckChaosOptions,
  checkChaos,
  type ModelFaultState,
  type RegisterWorkloadOptions,
  registerWorkload,
  type ShrinkOptions,
  type ShrinkResult,
  type SimContext,
  type SimResult,
  type SimulateOptions,
  shrink,
  simulate,
  type Workload,
} from './sim/index.js';
export {
  type BankWorkloadOptions,
  bankWorkload,
  type ContractNetWorkloadOptions,
  contractNetWorkload,
  type ModelStormWorkloadOptions,
  modelStormWorkload,
} from './suites/index.js';
