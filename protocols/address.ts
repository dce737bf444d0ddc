import { TroupeError } from './errors.js';

/**
 * An actor's address: `troupe://<system>/<node>/<path>` for an actor on a node,
 * `troupe://<system>/@<kind>/<key>` for a named actor placed by the cluster. `troupe://<system>/<node>/`
 * (an empty path) names the node itself, the root of its tree, which no message is delivered to.
 */
export type Address = string;

/** The parts of an {@link Address}. */
export interface AddressParts {
  readonly system: string;
  /** The node id, or `@<kind>` for a named actor. */
  readonly node: string;
  /** Slash-separated actor names from the top of the tree (or the key of a named actor); empty for the node. */
  readonly path: string;
}

const SCHEME = 'troupe://';

/** Builds an address from its parts. */
export function formatAddress(parts: AddressParts): Address {
  return `${SCHEME}${parts.system}/${parts.node}/${parts.path}`;
}

/**
 * Splits an address into its parts.
 * @throws TroupeError `ERR_INVALID_ADDRESS` when `address` is not of the form above.
 */
export function parseAddress(address: string): AddressParts {
  if (typeof address !== 'string' || !address.startsWith(SCHEME)) {
    throw invalidAddress(address);
  }
  const rest = address.slice(SCHEME.length);
  const first = rest.indexOf('/');
  const second = first < 0 ? -1 : rest.indexOf('/', first + 1);
  if (first <= 0 || second <= first + 1) throw invalidAddress(address);
  const path = rest.slice(second + 1);
  if (path !== '' && path.split('/').some((segment) => segment.length === 0)) throw invalidAddress(address);
  return { system: rest.slice(0, first), node: rest.slice(first + 1, second), path };
}

function invalidAddress(address: unknown): TroupeError {
  return new TroupeError(
    'ERR_INVALID_ADDRESS',
    `${JSON.stringify(address)} is not a Troupe address (troupe://<system>/<node>/<path>)`,
    { details: { address } },
  );
}
