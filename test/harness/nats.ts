/**
 * Private `nats-server` instances for tests: a random port, a temporary JetStream directory, and
 * stop/kill/restart on the same port so tests can play outages. The launcher is the chaos runner's
 * (ops/chaos/real/servers.ts), shared so there is one. The binary is Debian's `nats-server`
 * (scripts/setup.sh installs it when missing). No mock of NATS anywhere.
 */
export { NatsServer, type NatsServerOptions, natsServerBinary } from '../../ops/chaos/real/servers.js';
