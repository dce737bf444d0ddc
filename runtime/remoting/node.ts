/** A system that is one node of a cluster. */
import { TroupeError } from '../../protocols/index.js';
import type { ActorSystem } from '../kernel/api.js';
import { resolveSystemOptions, type SystemOptions } from '../kernel/options.js';
import { ActorSystemImpl } from '../kernel/system.js';

/**
 * Starts a system that is one node of a cluster: like {@link createSystem}, and resolves once its
 * transport receives, so that other nodes' messages to it are not missed.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option, or without a `transport`.
 * @example
 * ```ts
 * const system = await createNode({ name: 'shop', node: 'n1', transport: await natsTransport({ servers }) });
 * const counter = system.ref('troupe://shop/n2/counter', Counter);
 * counter.tell('add', { by: 1 });
 * ```
 */
export async function createNode(options: SystemOptions): Promise<ActorSystem> {
  const resolvedOptions = resolveSystemOptions(options);
  if (resolvedOptions.transport === undefined) {
    throw new TroupeError('ERR_INVALID_OPTION', 'Invalid option `transport`: a node needs one', {
      details: { option: 'transport', value: undefined },
    });
  }
  const system = new ActorSystemImpl(resolvedOptions);
  try {
    await system.opened;
  } catch (error) {
    await system.close();
    throw error;
  }
  return system;
}
