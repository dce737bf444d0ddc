/**
 * Members from a process group: a contract net whose members are `system.groups.members(group,
 * Protocol)` sees a member that joined between two rounds, and a member that stopped is gone.
 */
import { describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  behavior,
  ContractorProtocol,
  contractNet,
  VoterProtocol,
  vote,
} from '../../index.js';
import { testSystem } from './helpers.js';

function contractor(system: ActorSystem, name: string, cost: number) {
  return system.spawn(
    behavior({
      protocols: [ContractorProtocol],
      handlers: {
        propose: () => ({ bid: true as const, cost }),
        award: () => ({ ok: true as const, result: `${name} did it` }),
      },
    }),
    { name },
  );
}

describe('members from a group', () => {
  it('a contract net asks the members the group has at each round', async () => {
    const { system } = testSystem();
    const a = contractor(system, 'a', 30);
    system.groups.join('carriers', a);
    const members = () => system.groups.members('carriers', ContractorProtocol);
    const first = await contractNet({ system, members, task: { job: 1 }, round: 'r1' });
    expect(first).toMatchObject({ status: 'awarded', winner: a.address, price: 30 });
    const b = contractor(system, 'b', 10);
    system.groups.join('carriers', b);
    const second = await contractNet({ system, members, task: { job: 2 }, round: 'r2' });
    expect(second).toMatchObject({ status: 'awarded', winner: b.address, price: 10 });
    expect(second.bids).toHaveLength(2);
    await system.stop(b);
    await expect.poll(() => members().length).toBe(1);
    const third = await contractNet({ system, members, task: { job: 3 }, round: 'r3' });
    expect(third).toMatchObject({ status: 'awarded', winner: a.address });
  });

  it('a vote counts the voters the group has when it starts', async () => {
    const { system } = testSystem();
    const voter = (name: string, choice: string) =>
      system.spawn(behavior({ protocols: [VoterProtocol], handlers: { vote: () => ({ choice }) } }), {
        name,
      });
    const voters = () => system.groups.members('council', VoterProtocol);
    system.groups.join('council', voter('v1', 'yes'));
    system.groups.join('council', voter('v2', 'no'));
    system.groups.join('council', voter('v3', 'no'));
    const before = await vote({
      system,
      voters,
      question: 'Ship?',
      rule: { kind: 'plurality' },
      ballotId: 'b1',
    });
    expect(before).toMatchObject({ winner: 'no' });
    system.groups.join('council', voter('v4', 'yes'));
    system.groups.join('council', voter('v5', 'yes'));
    const after = await vote({
      system,
      voters,
      question: 'Ship?',
      rule: { kind: 'plurality' },
      ballotId: 'b2',
    });
    expect(after).toMatchObject({ winner: 'yes' });
    expect(after.ballots).toHaveLength(5);
  });
});
