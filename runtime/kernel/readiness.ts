import { TroupeError } from '../../protocols/index.js';
import type { ActorSystem } from './api.js';
import { ActorSystemImpl, type SystemReadiness } from './system.js';

export type { SystemReadiness };

/**
 * The readiness facts of a system made by `createSystem` or `createNode`.
 * @throws TroupeError `ERR_INVALID_OPTION` for anything else.
 */
export function systemReadiness(system: ActorSystem): SystemReadiness {
  if (!(system instanceof ActorSystemImpl)) {
    throw new TroupeError('ERR_INVALID_OPTION', 'Invalid option `system`: not a Troupe actor system', {
      details: { option: 'system' },
    });
  }
  return system.readiness();
}

/** Counters the kernel keeps for metrics. */
export interface SystemStats {
  /** User messages taken from mailboxes to be handled since the system started. */
  readonly messagesHandled: number;
}

/**
 * The kernel's counters of a system made by `createSystem` or `createNode`.
 * @throws TroupeError `ERR_INVALID_OPTION` for anything else.
 */
export function systemStats(system: ActorSystem): SystemStats {
  if (!(system instanceof ActorSystemImpl)) {
    throw new TroupeError('ERR_INVALID_OPTION', 'Invalid option `system`: not a Troupe actor system', {
      details: { option: 'system' },
    });
  }
  return { messagesHandled: system.handled };
}
