/**
 * Societies: multi-agent patterns (topics, routers, contract-net, voting, pipelines, blackboard,
 * sagas) and chaos testing. Planned; today it exports nothing. It may import from every layer below it.
 * @packageDocumentation
 */
export {};
