/**
 * `troupe/nestjs`: Troupe in a NestJS application. `TroupeModule` provides an actor system (or a node)
 * to Nest's dependency injection and drains it on shutdown, `@InjectRef` injects refs, `TroupeServer`
 * is a microservice transport strategy that makes `@MessagePattern`/`@EventPattern` handlers reachable
 * from Troupe refs, and `TroupeClientProxy` a `ClientProxy` that asks and tells Troupe actors.
 * NestJS (`@nestjs/common`, `@nestjs/core`, `@nestjs/microservices`) is an optional peer dependency:
 * only this entry needs it.
 * @packageDocumentation
 */
export { type TroupeClientOptions, TroupeClientProxy } from './client.js';
export type { TroupeRpcError } from './errors.js';
export {
  InjectRef,
  refToken,
  TROUPE_SYSTEM,
  TroupeModule,
  type TroupeModuleAsyncOptions,
  type TroupeModuleOptions,
  troupeModuleDefaults,
} from './module.js';
export {
  NestPatterns,
  TROUPE_TRANSPORT,
  TroupeContext,
  TroupeServer,
  type TroupeServerOptions,
  troupeServerDefaults,
} from './server.js';
