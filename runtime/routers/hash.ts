/**
 * Rendezvous (highest random weight) hashing: a key goes to the member with the highest hash of
 * (member, key). When a member joins, only the keys it now wins move (about 1/n); when one leaves,
 * only its keys move. No ring, no virtual nodes, nothing to rebuild.
 */

/** A 32-bit hash of a string: FNV-1a, then murmur3's finalizer so that near strings spread. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The index of the member that rendezvous hashing gives `key` to, or -1 for no member. */
export function rendezvous(members: readonly string[], key: string): number {
  let best = -1;
  let bestScore = -1;
  for (let i = 0; i < members.length; i++) {
    const score = hash32(`${members[i]}\u0000${key}`);
    // Ties (rare) go to the smaller member id, so the choice does not depend on the list's order.
    if (score > bestScore || (score === bestScore && members[i]! < members[best]!)) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}
