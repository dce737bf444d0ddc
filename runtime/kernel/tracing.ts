import { TroupeError } from '../../protocols/index.js';
import type { ActorSystem } from './api.js';
import { ActorSystemImpl } from './system.js';
import type { KernelTracer } from './tracer.js';

export type { HandlerSpan, KernelTracer } from './tracer.js';

/**
 * Installs `tracer` in `system`: from now on local sends carry trace contexts too (sends from a
 * handler carry its message's), and each message that comes with one is handled inside the span the
 * tracer gives. Returns a function that uninstalls it.
 * @throws TroupeError `ERR_ILLEGAL_STATE` when a tracer is already installed; `ERR_INVALID_OPTION`
 * for something that is not a Troupe system.
 */
export function installTracing(system: ActorSystem, tracer: KernelTracer): () => void {
  if (!(system instanceof ActorSystemImpl)) {
    throw new TroupeError('ERR_INVALID_OPTION', 'Invalid option `system`: not a Troupe actor system', {
      details: { option: 'system' },
    });
  }
  if (system.tracer !== undefined) {
    throw new TroupeError('ERR_ILLEGAL_STATE', `system ${system.name} already has a tracer installed`);
  }
  system.setTracer(tracer);
  return () => {
    if (system.tracer === tracer) system.setTracer(undefined);
  };
}
