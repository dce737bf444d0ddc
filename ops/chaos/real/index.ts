export {
  type NetworkFault,
  type RealResult,
  type RealRunOptions,
  runReal,
} from './run.js';
export {
  NatsServer,
  type NatsServerOptions,
  natsServerBinary,
  PostgresServer,
  type PostgresServerOptions,
  postgresBinaries,
} from './servers.js';
