/**
 * Agents: actors that run a model-and-tools loop. Model ports (OpenAI-compatible, Anthropic,
 * scripted), guarded models and fallback chains, tools with schemas, record and replay, usage
 * accounting. It may import from every layer below it (`protocols` to `memory`).
 * @packageDocumentation
 */
export { type AgentOptions, AgentProtocol, agent } from './agent.js';
export { type AnthropicModelOptions, anthropicModel } from './anthropic.js';
export type { AgentState } from './conversation.js';
export type { AgentRunEvent, AgentStepEvent } from './events.js';
export {
  fallbackModels,
  type GuardedModelOptions,
  guardedModel,
  retryableModelError,
} from './guarded.js';
export type { HttpModelOptions } from './http.js';
export type {
  ChatMessage,
  ModelCallOptions,
  ModelPort,
  ModelRequest,
  ModelResponse,
  StopReason,
  TokenUsage,
  ToolCall,
  ToolSpec,
} from './model.js';
export { type OpenAIModelOptions, openAIModel } from './openai.js';
export {
  type RecordEntry,
  type RecordedError,
  type Recorder,
  type Replay,
  recorder,
  replay,
} from './record.js';
export type { RunOutcome } from './run.js';
export {
  type ScriptedAnswer,
  type ScriptedModelOptions,
  type ScriptStep,
  scriptedModel,
} from './scripted.js';
export { type Tool, type ToolContext, type ToolDefinition, type ToolResult, tool } from './tools.js';
export {
  formatUsage,
  type ModelPrice,
  type UsageLedger,
  type UsageLedgerOptions,
  type UsageSink,
  type UsageTotals,
  usageLedger,
} from './usage.js';
