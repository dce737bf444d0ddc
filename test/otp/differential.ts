/**
 * The differential check: a batch of scenarios on Erlang/OTP (one escript process) and on Troupe,
 * traces compared; a disagreement is shrunk, each round trying every one-step simplification of the
 * scenario in one OTP batch, and reported with both traces side by side.
 */
import { runOnOtp } from './oracle.js';
import { nodes, parentsOf, ROOT, type Scenario, simplifications, type TreeNode } from './scenario.js';
import { canonicalOtp, firstDifference, sideBySide } from './traces.js';
import { runOnTroupe, type TroupeRun } from './troupe.js';

export interface Outcome {
  readonly scenario: Scenario;
  readonly otp: string[];
  readonly troupe: TroupeRun;
  readonly agree: boolean;
}

/** The scenario Troupe runs: the same one, or (to show the check catches a broken system) another. */
export type OnTroupe = (scenario: Scenario) => Scenario;

const same: OnTroupe = (scenario) => scenario;

/** Runs every scenario on both sides. */
export async function runBoth(scenarios: readonly Scenario[], onTroupe = same): Promise<Outcome[]> {
  const otp = await runOnOtp(scenarios);
  const outcomes: Outcome[] = [];
  for (const scenario of scenarios) {
    const otpTrace = otp.get(scenario.id)!;
    const troupe = await runOnTroupe(onTroupe(scenario));
    outcomes.push({ scenario, otp: otpTrace, troupe, agree: firstDifference(otpTrace, troupe.trace) < 0 });
  }
  return outcomes;
}

/** Rounds of shrinking at most; each is one OTP batch (a few seconds at worst). */
const MAX_ROUNDS = 60;

/** A smallest disagreeing scenario reachable from `failure` by one-step simplifications. */
export async function shrink(failure: Outcome, onTroupe = same): Promise<Outcome> {
  let smallest = failure;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const candidates = [...stepsUpToDifference(smallest), ...simplifications(smallest.scenario)];
    if (candidates.length === 0) break;
    const named = candidates.map((s, i) => ({ ...s, id: `r${round}c${i}` }));
    const next = (await runBoth(named, onTroupe)).find((o) => !o.agree);
    if (next === undefined) break;
    smallest = next;
  }
  return smallest;
}

/** The scenario without the steps after the one during which the traces part, when there are any. */
function stepsUpToDifference({ scenario, otp, troupe }: Outcome): Scenario[] {
  const at = firstDifference(otp, troupe.trace);
  const begun = canonicalOtp(otp)
    .slice(0, at + 1)
    .filter((token) => /^(crash|exit|start|wait):/.test(token)).length;
  return begun < scenario.steps.length ? [{ ...scenario, steps: scenario.steps.slice(0, begun) }] : [];
}

/** A report of a disagreement: the scenario and both traces side by side. */
export function describeFailure(outcome: Outcome, heading: string): string {
  const { id: _, ...scenario } = outcome.scenario;
  return [
    heading,
    `scenario: ${JSON.stringify(scenario)}`,
    'traces (+N started, +N! start failed, -N stopped by its supervisor, -N! stopped by its own crash or exit,',
    'skip: the step found its target not running, X: the root supervisor is gone):',
    sideBySide(outcome.otp, outcome.troupe.trace),
  ].join('\n');
}

/** The kinds of scenario the differential test must cover; {@link coverage} counts each. */
export const CLASSES = [
  'crash',
  'normal exit',
  'permanent child exits',
  'transient child exits',
  'temporary child exits',
  'one_for_one restart',
  'one_for_all restart',
  'rest_for_one restart',
  'dynamic child restart',
  'give-up absorbed by a parent',
  'give-up cascading through nested supervisors',
  'root supervisor gives up',
  'dynamic supervisor gives up',
  'restart window boundary (a restart exactly one period after another)',
  'restart window expired (a restart more than one period after another)',
  'first start fails',
  'restart fails',
  'dynamic start fails',
] as const;

export type CoverageClass = (typeof CLASSES)[number];

/** How many scenarios fall in each class. */
export function coverage(outcomes: readonly Outcome[]): Record<CoverageClass, number> {
  const counts = Object.fromEntries(CLASSES.map((c) => [c, 0])) as Record<CoverageClass, number>;
  for (const outcome of outcomes) for (const c of classify(outcome)) counts[c]++;
  return counts;
}

function classify({ scenario, otp, troupe }: Outcome): Set<CoverageClass> {
  const found = new Set<CoverageClass>();
  const byName = new Map<string, TreeNode>(nodes(scenario.root).map((n) => [n.name, n]));
  const parents = parentsOf(scenario);
  const restartOf = (name: string) => {
    const node = byName.get(name);
    if (node !== undefined) return node.restart;
    const dyn = byName.get(parents.get(name) ?? '');
    return dyn?.kind === 'dyn' ? dyn.childRestart : undefined;
  };
  let last = '';
  otp.forEach((token, i) => {
    const [op, name = ''] = token.split(':');
    if ((op === 'crash' || op === 'exit') && otp[i + 1] !== 'skip') {
      found.add(op === 'crash' ? 'crash' : 'normal exit');
      found.add(`${restartOf(name)} child exits` as CoverageClass);
    }
    if (token.startsWith('+') && token.endsWith('!')) {
      found.add(
        last === ''
          ? 'first start fails'
          : last.startsWith('start:')
            ? 'dynamic start fails'
            : 'restart fails',
      );
    }
    if (/^(crash|exit|start|wait):/.test(token)) last = token;
  });
  const supervisorOf = (path: string) => byName.get(path.split('/').at(-2) ?? '');
  const times = new Map<string, number[]>();
  for (const { path, at } of troupe.restarts) {
    const sup = supervisorOf(path);
    if (sup?.kind === 'sup') found.add(`${sup.strategy} restart` as CoverageClass);
    if (sup?.kind === 'dyn') found.add('dynamic child restart');
    if (sup === undefined || sup.kind === 'worker') continue;
    const seen = times.get(sup.name) ?? [];
    for (const earlier of seen) {
      if (at - earlier === sup.periodSeconds * 1000)
        found.add('restart window boundary (a restart exactly one period after another)');
      if (at - earlier > sup.periodSeconds * 1000)
        found.add('restart window expired (a restart more than one period after another)');
    }
    times.set(sup.name, [...seen, at]);
  }
  const perStep = new Map<number, string[]>();
  for (const { path, step } of troupe.gaveUp) perStep.set(step, [...(perStep.get(step) ?? []), path]);
  for (const paths of perStep.values()) {
    if (paths.length > 1) found.add('give-up cascading through nested supervisors');
    if (paths.includes(ROOT)) found.add('root supervisor gives up');
    else found.add('give-up absorbed by a parent');
    if (paths.some((p) => byName.get(p.split('/').at(-1)!)?.kind === 'dyn'))
      found.add('dynamic supervisor gives up');
  }
  return found;
}
