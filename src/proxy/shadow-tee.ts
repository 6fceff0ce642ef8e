// The request body teed for a shadow copy: the user's upload passes through untouched, a copy is kept up to max_body.

/** How a tee ends: the whole body for the copy, or why there is none. */
export type TeeResult = { chunks: Buffer[]; bytes: number } | { dropped: 'body_too_large' | 'body_incomplete' };

/**
 * Wraps the user's body iterator as undici reads it. Each chunk goes on to the user's exchange at once;
 * a reference to it is kept for the copy (chunks are not copied, and nothing waits on the shadow). Past
 * `maxBytes` the copy is abandoned and its chunks let go; a body that does not end (the client left, or
 * the upstream answered before it was in) is no copy either. `done` is called once, on the first of those.
 */
export class BodyTee implements AsyncIterableIterator<Buffer> {
  private chunks: Buffer[] | undefined = [];
  private bytes = 0;
  private settled = false;

  constructor(
    private readonly source: AsyncIterator<Buffer>,
    private readonly maxBytes: number,
    private readonly done: (result: TeeResult) => void,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    return this.source.next().then(this.tap, this.failed);
  }

  return(value?: unknown): Promise<IteratorResult<Buffer>> {
    this.settle({ dropped: 'body_incomplete' });
    return this.source.return?.(value) ?? Promise.resolve({ done: true, value: undefined });
  }

  throw(err?: unknown): Promise<IteratorResult<Buffer>> {
    this.settle({ dropped: 'body_incomplete' });
    return this.source.throw?.(err) ?? Promise.reject(err);
  }

  private readonly tap = (result: IteratorResult<Buffer>): IteratorResult<Buffer> => {
    if (this.settled) return result;
    if (result.done) {
      // The chunks are joined later, off the user's path (see ShadowTraffic).
      this.settle({ chunks: this.chunks!, bytes: this.bytes });
      return result;
    }
    const chunk = result.value;
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) this.settle({ dropped: 'body_too_large' });
    else this.chunks!.push(chunk);
    return result;
  };

  private readonly failed = (err: unknown): never => {
    this.settle({ dropped: 'body_incomplete' });
    throw err;
  };

  /** Gives up the copy now (a body still coming after rollout.shadow.timeout); the user's upload goes on. */
  abandon(): void {
    this.settle({ dropped: 'body_incomplete' });
  }

  private settle(result: TeeResult): void {
    if (this.settled) return;
    this.settled = true;
    this.chunks = undefined;
    this.done(result);
  }
}
