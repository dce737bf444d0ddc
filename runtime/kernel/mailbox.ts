/**
 * A FIFO of messages stored as (type, body, meta) triples in one growable ring buffer, so enqueuing
 * allocates nothing in the steady state. `meta` is the sender or the pending ask.
 *
 * The actor cell extends it, so the queue's fields live in the cell itself: with many actors, the
 * message path then reads one object instead of two (measured in `kernel.tell.10k-actors`). The buffer
 * is made on the first message. Its slot count is a power of two and `mbHead` is an array index (a
 * multiple of 3), so wrapping is a comparison, not a division. The cell's run loop reads the fields
 * directly: it is the hottest path.
 */
export class Mailbox {
  protected mbBuffer: unknown[] | undefined;
  /** Array index of the oldest message's type. */
  protected mbHead = 0;
  /** Messages queued. */
  protected mbSize = 0;

  protected pushMessage(type: string, body: unknown, meta: unknown): void {
    const buffer = this.room();
    let i = this.mbHead + this.mbSize * 3;
    if (i >= buffer.length) i -= buffer.length;
    buffer[i] = type;
    buffer[i + 1] = body;
    buffer[i + 2] = meta;
    this.mbSize++;
  }

  /** Puts a message in front (used by `unstashAll`). */
  protected unshiftMessage(type: string, body: unknown, meta: unknown): void {
    const buffer = this.room();
    let i = this.mbHead - 3;
    if (i < 0) i += buffer.length;
    this.mbHead = i;
    buffer[i] = type;
    buffer[i + 1] = body;
    buffer[i + 2] = meta;
    this.mbSize++;
  }

  /** Removes and returns the oldest message as a triple; the queue must not be empty. */
  protected shiftMessage(): [string, unknown, unknown] {
    const buffer = this.mbBuffer!;
    const i = this.mbHead;
    const triple: [string, unknown, unknown] = [buffer[i] as string, buffer[i + 1], buffer[i + 2]];
    buffer[i] = undefined;
    buffer[i + 1] = undefined;
    buffer[i + 2] = undefined;
    this.mbHead = i + 3 === buffer.length ? 0 : i + 3;
    this.mbSize--;
    return triple;
  }

  /** Removes and returns every message, oldest first, as triples, and frees the buffer. */
  protected takeAllMessages(): unknown[] {
    const out: unknown[] = [];
    while (this.mbSize > 0) out.push(...this.shiftMessage());
    this.mbBuffer = undefined;
    this.mbHead = 0;
    return out;
  }

  /**
   * The buffer, made or grown so that one more message fits. It grows before its last free slot is
   * used, so the slot just before the head (the message a handler may be running on) is never reused
   * by a push while that handler runs.
   */
  private room(): unknown[] {
    const buffer = this.mbBuffer;
    if (buffer === undefined) {
      this.mbBuffer = new Array(3 * 2);
      return this.mbBuffer;
    }
    return (this.mbSize + 1) * 3 === buffer.length ? this.growBuffer(buffer) : buffer;
  }

  /** Called before the buffer is replaced: the cell moves a message it is handling out of its slot. */
  protected rescueCurrent(): void {}

  private growBuffer(old: unknown[]): unknown[] {
    this.rescueCurrent();
    const next = new Array(old.length * 2);
    let from = this.mbHead;
    for (let n = 0; n < this.mbSize * 3; n += 3) {
      next[n] = old[from];
      next[n + 1] = old[from + 1];
      next[n + 2] = old[from + 2];
      from = from + 3 === old.length ? 0 : from + 3;
    }
    this.mbBuffer = next;
    this.mbHead = 0;
    return next;
  }
}
