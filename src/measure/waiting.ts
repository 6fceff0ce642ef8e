// Requests still waiting for their first byte, per upstream, in start order: how hangs are seen before they end.

/** What the list links: a record carries its own links (no node allocated per request). */
export interface WaitingRecord {
  /** Monotonic ms when the request went to its current upstream. */
  startedAt: number;
  waitPrev: WaitingRecord | null;
  waitNext: WaitingRecord | null;
  waitList: WaitingList | null;
}

/**
 * An intrusive doubly linked list ordered by start time: requests are appended as they start (start times
 * only grow), and unlinked in O(1) at their first byte or their end, so the head is always the oldest
 * request still waiting. Nothing runs per request but the two link updates; the evaluator walks from the
 * head, off the request path, and stops at the first request younger than what it asks about.
 */
export class WaitingList {
  private head: WaitingRecord | null = null;
  private tail: WaitingRecord | null = null;
  size = 0;

  add(r: WaitingRecord): void {
    if (r.waitList !== null) r.waitList.remove(r);
    r.waitList = this;
    r.waitPrev = this.tail;
    r.waitNext = null;
    if (this.tail) this.tail.waitNext = r;
    else this.head = r;
    this.tail = r;
    this.size++;
  }

  /** Unlinks a record if it is on this list; a no-op otherwise (first byte and end both call it). */
  remove(r: WaitingRecord): void {
    if (r.waitList !== this) return;
    if (r.waitPrev) r.waitPrev.waitNext = r.waitNext;
    else this.head = r.waitNext;
    if (r.waitNext) r.waitNext.waitPrev = r.waitPrev;
    else this.tail = r.waitPrev;
    r.waitPrev = null;
    r.waitNext = null;
    r.waitList = null;
    this.size--;
  }

  /** Age in ms of the oldest request still waiting, 0 when none waits. */
  oldestAgeMs(now: number): number {
    return this.head ? Math.max(0, now - this.head.startedAt) : 0;
  }

  /**
   * Ages (ms, oldest first) of the requests that have waited longer than `olderThanMs`, at most `limit`
   * of them (a bound on the evaluator's work when very many hang).
   */
  agesOver(olderThanMs: number, now: number, limit = 100_000): number[] {
    const out: number[] = [];
    for (let r = this.head; r !== null && out.length < limit; r = r.waitNext) {
      const age = now - r.startedAt;
      if (age <= olderThanMs) break;
      out.push(age);
    }
    return out;
  }
}
