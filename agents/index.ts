/**
 * Agents: agent behaviours, model ports (OpenAI-compatible, Anthropic, scripted), tools and
 * record/replay. This layer arrives with the agents issue; today it exports nothing.
 * It may import from every layer below it (`protocols` to `memory`).
 * @packageDocumentation
 */
export {};
