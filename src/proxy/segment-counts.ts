// Requests per segment and side since start: plain numbers on the request path, read by /api/status and metrics.

import type { UpstreamName } from '../config/types.js';

export class SegmentCounts {
  /** Bounded by the segments ever configured (at most 32 per config). */
  readonly bySegment = new Map<string, { legacy: number; new: number }>();

  count(segment: string, upstream: UpstreamName): void {
    let perSide = this.bySegment.get(segment);
    if (perSide === undefined) {
      perSide = { legacy: 0, new: 0 };
      this.bySegment.set(segment, perSide);
    }
    perSide[upstream]++;
  }
}
