// The finished streams a recorder meters together, field by field in typed arrays.

import type { Outcome } from './outcome.js';

/** Streams metered together at most (the recorder flushes a full batch at once). */
export const BATCH_MAX = 256;

/** One batch of finished streams, field by field (not the records themselves: a fallback reuses its Exchange). */
export class Batch {
  n = 0;
  readonly upstream = new Uint8Array(BATCH_MAX);
  readonly outcome: Outcome[] = new Array(BATCH_MAX);
  readonly status = new Uint16Array(BATCH_MAX);
  readonly reason: string[] = new Array(BATCH_MAX);
  /** Milliseconds; NaN when not measured. */
  readonly ttfb = new Float64Array(BATCH_MAX);
  readonly duration = new Float64Array(BATCH_MAX);
  // Access-log fields (times in ms; NaN when none).
  readonly bucket = new Float64Array(BATCH_MAX);
  readonly method: string[] = new Array(BATCH_MAX);
  readonly path: string[] = new Array(BATCH_MAX);
  readonly protocol: string[] = new Array(BATCH_MAX);
  readonly headersMs = new Float64Array(BATCH_MAX);
  readonly totalMs = new Float64Array(BATCH_MAX);
  readonly bytes = new Float64Array(BATCH_MAX);
  readonly poolWaitMs = new Float64Array(BATCH_MAX);
  /** Monotonic ms of the stream's end, for the log line's time. */
  readonly endedAt = new Float64Array(BATCH_MAX);
  // Token accounting (end -1 when the answer was not read; times NaN when not measured).
  readonly end = new Int8Array(BATCH_MAX);
  readonly events = new Float64Array(BATCH_MAX);
  readonly tokenEvents = new Float64Array(BATCH_MAX);
  readonly outputTokens = new Float64Array(BATCH_MAX);
  readonly tpot = new Float64Array(BATCH_MAX);
  readonly maxGap = new Float64Array(BATCH_MAX);
}
