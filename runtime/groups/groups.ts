import { filter, type Observable } from 'rxjs';
import { type AnyProtocol, invalidOption, TroupeError } from '../../protocols/index.js';
import type { ActorRef, Groups } from '../kernel/api.js';
import type { Cell } from '../kernel/cell.js';
import type { Directory } from './directory.js';
import type { GroupChange } from './events.js';

/** The system's {@link Groups}, over its directory. */
export class GroupsImpl implements Groups {
  constructor(
    private readonly directory: () => Directory,
    private readonly localCell: (ref: ActorRef<any>) => Cell | undefined,
  ) {}

  join(group: string, member: ActorRef<any>): void {
    checkGroup(group);
    const cell = this.localCell(member);
    if (cell === undefined || !cell.alive) {
      throw invalidOption(
        'member',
        'must be a live actor of this node (an actor joins a group on its own node)',
        member?.address,
      );
    }
    this.directory().join(group, cell);
  }

  leave(group: string, member: ActorRef<any>): boolean {
    checkGroup(group);
    const cell = this.localCell(member);
    return cell === undefined ? false : this.directory().leave(group, cell);
  }

  members(group: string, protocol?: AnyProtocol): ActorRef<any>[] {
    checkGroup(group);
    return this.directory().members(group, protocol);
  }

  localMembers(group: string, _protocol?: AnyProtocol): ActorRef<any>[] {
    checkGroup(group);
    return this.directory().localMembers(group);
  }

  names(): string[] {
    return this.directory().groups();
  }

  changes(group?: string): Observable<GroupChange> {
    if (group !== undefined) checkGroup(group);
    const all = this.directory().changes$;
    return group === undefined ? all : all.pipe(filter((change) => change.group === group));
  }
}

function checkGroup(group: string): void {
  if (typeof group !== 'string' || group.length === 0 || group.length > 256) {
    throw new TroupeError('ERR_INVALID_NAME', 'a group name must be a string of 1 to 256 characters', {
      details: { group },
    });
  }
}
