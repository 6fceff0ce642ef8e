// A ring of time slices on one clock: the slice a moment falls in, the slices still in the window, and a reload's reshape.

/** What a slice must do for the ring: know its epoch, start over at a new one, and take in another's samples. */
export interface RingSlice<S> {
  epoch: number;
  reset(epoch: number): void;
  absorb(other: S): void;
}

/**
 * A slice older than the window is reset when its ring position is reused, so expiry costs nothing per
 * sample. `beforeRotate` runs before a new epoch opens, so samples batched for the open slice land in it.
 */
export class SliceRing<S extends RingSlice<S>> {
  /** window ÷ slices; changes only in reshape(). */
  sliceMs: number;
  /** The epoch of the slice last opened; -1 before the first sample and after a reshape. */
  openEpoch = -1;
  private slices: S[];

  constructor(
    windowMs: number,
    count: number,
    private readonly make: () => S,
    private readonly beforeRotate: () => void,
  ) {
    this.sliceMs = windowMs / count;
    this.slices = Array.from({ length: count }, make);
  }

  get all(): readonly S[] {
    return this.slices;
  }

  epochOf(now: number): number {
    return Math.floor(now / this.sliceMs);
  }

  /** The slice for `now`, rotating the ring when a new epoch begins. */
  at(now: number): S {
    const epoch = Math.floor(now / this.sliceMs);
    if (epoch !== this.openEpoch) {
      this.beforeRotate();
      this.openEpoch = epoch;
      const slice = this.slices[epoch % this.slices.length]!;
      if (slice.epoch !== epoch) slice.reset(epoch);
      return slice;
    }
    return this.slices[epoch % this.slices.length]!;
  }

  /** The slice opened last, if any (where batched samples go). */
  get open(): S | undefined {
    return this.openEpoch < 0 ? undefined : this.slices[this.openEpoch % this.slices.length];
  }

  /** The slices of the window that ends with `epoch`. */
  live(epoch: number): S[] {
    const out: S[] = [];
    const count = this.slices.length;
    for (const slice of this.slices)
      if (slice.epoch >= 0 && slice.epoch > epoch - count && slice.epoch <= epoch) out.push(slice);
    return out;
  }

  /**
   * A new window length and slice count (a config reload) that keeps the samples. Each live slice moves
   * whole into the new slice that holds its last moment, so its samples leave the window when a sample
   * of that moment would under the new slices (up to one new slice earlier or one old slice later than
   * under the old ones); slices that end before the new window are dropped. Batched samples must be put
   * in their slice first.
   */
  reshape(windowMs: number, count: number, now: number): void {
    const oldSliceMs = this.sliceMs;
    const live = this.live(Math.floor(now / oldSliceMs));
    this.sliceMs = windowMs / count;
    this.slices = Array.from({ length: count }, this.make);
    const epoch = Math.floor(now / this.sliceMs);
    for (const old of live) {
      const target = Math.min(epoch, Math.ceil(((old.epoch + 1) * oldSliceMs) / this.sliceMs) - 1);
      if (target <= epoch - count) continue;
      const slice = this.slices[target % count]!;
      if (slice.epoch !== target) slice.reset(target);
      slice.absorb(old);
    }
    this.openEpoch = -1;
  }
}
