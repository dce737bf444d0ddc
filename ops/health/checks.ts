import type { Journal } from '../../memory/index.js';
import type { ActorSystem } from '../../runtime/index.js';
import { systemReadiness } from '../../runtime/internal.js';

/** What one readiness check found: ready or not, and why not. */
export interface CheckResult {
  readonly ok: boolean;
  /** A short reason, shown in `/readyz`'s body. */
  readonly detail?: string;
}

/**
 * One thing `/readyz` asks before it says ready. `check` resolves with a boolean or a
 * {@link CheckResult}; a throw, a rejection or a run past the server's `checkTimeoutMs` counts as
 * not ready. The signal aborts when the time is up.
 */
export interface ReadinessCheck {
  readonly name: string;
  check(signal: AbortSignal): boolean | CheckResult | Promise<boolean | CheckResult>;
}

/**
 * The checks a system answers itself: `system` (running, not draining or stopped), `transport`
 * (its transport opened and is connected now; only for a system with one) and `cluster` (it joined
 * its cluster and reaches the membership store; only for a system with named actors).
 */
export function systemChecks(system: ActorSystem): ReadinessCheck[] {
  const facts = () => systemReadiness(system);
  const checks: ReadinessCheck[] = [
    {
      name: 'system',
      check: () => {
        const running = facts().running;
        return running ? { ok: true } : { ok: false, detail: `system is ${system.status.tag}` };
      },
    },
  ];
  const initial = facts();
  if (initial.transport !== undefined) {
    checks.push({
      name: 'transport',
      check: () => {
        const { opened, transport } = facts();
        if (transport === undefined) return { ok: false, detail: 'no transport' };
        if (opened !== 'open') return { ok: false, detail: `${transport.kind} transport ${opened}` };
        return transport.connected
          ? { ok: true, detail: transport.kind }
          : { ok: false, detail: `${transport.kind} disconnected` };
      },
    });
  }
  if (initial.cluster !== undefined) {
    checks.push({
      name: 'cluster',
      check: () => {
        const cluster = facts().cluster;
        if (cluster === undefined || !cluster.joined) return { ok: false, detail: 'not joined' };
        if (!cluster.storeReachable) return { ok: false, detail: 'membership store unreachable' };
        return { ok: true, detail: `${system.members().length} members` };
      },
    });
  }
  return checks;
}

/**
 * A readiness check that the journal's store answers: it reads the version of a stream (one cheap
 * query). Not ready while Postgres (or PGlite) is unreachable.
 * @example
 * ```ts
 * await startOpsServer({ port: 9464, system, checks: [journalCheck(journal)] });
 * ```
 */
export function journalCheck(journal: Journal, name = 'journal'): ReadinessCheck {
  return {
    name,
    check: async () => {
      await journal.streamVersion('$troupe-readiness');
      return true;
    },
  };
}
