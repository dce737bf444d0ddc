/**
 * A node process as a workload's client sees it: `actorOf(kind, key)` refs whose asks and tells go
 * to that node's gateway over NATS, where the node makes them through its own actor system. It is
 * handed to workloads as an `ActorSystem`; they reach a node only through `name`, `node`, `clock`,
 * `random`, `actorOf` and `ref` (asks and tells to an address, which the node sends on wherever the
 * actor lives), and anything else throws a clear error instead of misbehaving.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { ERROR_CODES, type ErrorCode, TroupeError } from '../../../protocols/index.js';
import { type ActorSystem, type AskOptions, realClock, realRandom } from '../../../runtime/index.js';
import { type GatewayReply, type GatewayRequest, gatewaySubject } from './wire.js';

/** Asks a node's gateway; an answer that is an error is thrown as the node's `TroupeError`. */
export async function callGateway(
  nc: NatsConnection,
  cluster: string,
  node: string,
  request: GatewayRequest,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<unknown> {
  signal?.throwIfAborted();
  const sent = nc.request(gatewaySubject(cluster, node), JSON.stringify(request), { timeout: timeoutMs });
  let reply: GatewayReply;
  let onAbort: (() => void) | undefined;
  try {
    const message = await (signal === undefined
      ? sent
      : Promise.race([
          sent,
          new Promise<never>((_, reject) => {
            onAbort = () => reject(new TroupeError('ERR_ASK_ABORTED', `the call to ${node} was aborted`));
            signal.addEventListener('abort', onAbort, { once: true });
          }),
        ]));
    reply = message.json<GatewayReply>();
  } catch (error) {
    if (TroupeError.is(error)) throw error;
    const text = String((error as Error)?.message ?? error);
    const timedOut = /timeout/i.test(text) || (error as Error)?.name === 'TimeoutError';
    throw new TroupeError(
      timedOut ? 'ERR_ASK_TIMEOUT' : 'ERR_TRANSPORT',
      timedOut ? `node ${node} did not answer within ${timeoutMs} ms` : `cannot reach node ${node}: ${text}`,
      { cause: error },
    );
  } finally {
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
  if (reply.ok) return reply.value;
  const code = (reply.code in ERROR_CODES ? reply.code : 'ERR_REMOTE') as ErrorCode;
  throw new TroupeError(code, `${reply.message} (on ${node})`);
}

/** A node process reached through its gateway, as the part of an `ActorSystem` workloads use. */
export function remoteNode(nc: NatsConnection, cluster: string, node: string): ActorSystem {
  const ask = (request: GatewayRequest & { timeoutMs: number }, options: AskOptions | undefined) =>
    callGateway(nc, cluster, node, request, request.timeoutMs + 250, options?.signal);
  const tell = (request: GatewayRequest) => {
    callGateway(nc, cluster, node, request, 5000).catch(() => {});
  };
  const target = {
    name: cluster,
    node,
    clock: realClock,
    random: realRandom,
    actorOf(kind: string, key: string) {
      return {
        address: `troupe://${cluster}/@${kind}/${key}`,
        ask: (type: string, body: unknown, options?: AskOptions) => {
          const timeoutMs = options?.timeoutMs ?? 5000;
          return ask({ op: 'ask', kind, key, type, body: body ?? {}, timeoutMs }, options);
        },
        tell: (type: string, body: unknown) => tell({ op: 'tell', kind, key, type, body: body ?? {} }),
      };
    },
    ref(address: string) {
      return {
        address,
        ask: (type: string, body: unknown, options?: AskOptions) => {
          const timeoutMs = options?.timeoutMs ?? 5000;
          return ask({ op: 'ask-at', address, type, body: body ?? {}, timeoutMs }, options);
        },
        tell: (type: string, body: unknown) => tell({ op: 'tell-at', address, type, body: body ?? {} }),
      };
    },
  };
  return new Proxy(target, {
    get(t, property) {
      if (property in t) return t[property as keyof typeof t];
      if (typeof property === 'symbol' || property === 'then' || property === 'toJSON') return undefined;
      throw new TroupeError(
        'ERR_ILLEGAL_STATE',
        `a chaos client reaches node ${node} of a real run through actorOf and ref only; ActorSystem.${property} is not available`,
      );
    },
  }) as unknown as ActorSystem;
}
