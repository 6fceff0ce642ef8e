// What token accounting says about one answer: its end class, token events and times, and a log histogram of its gaps.

/** How an answer ended, as judged from its bytes (and from the client leaving). */
export const END_CLASSES = ['complete', 'truncated', 'inband_error', 'empty', 'client_abort'] as const;
export type EndClass = (typeof END_CLASSES)[number];

export const END_CLASS_INDEX: Readonly<Record<EndClass, number>> = {
  complete: 0,
  truncated: 1,
  inband_error: 2,
  empty: 3,
  client_abort: 4,
};

/** The event grammar a stream is read with; `responses` is OpenAI's Responses API. */
export type StreamFormat = 'openai' | 'responses' | 'anthropic' | 'generic';
/** measure.stream_format: `auto` picks by the request path, then by the first event. */
export type StreamFormatSetting = 'auto' | StreamFormat;

/** One finished answer's token figures, handed to the recorder with its StreamRecord. */
export interface TokenSummary {
  /** `sse` for an event stream, `json` for a non-streaming JSON answer. */
  readonly kind: 'sse' | 'json';
  readonly format: StreamFormat;
  /** Events with data (comments and events without data are not counted). */
  readonly events: number;
  /** Events that carried content (a token delta); TPOT and ITL are measured between these. */
  readonly tokenEvents: number;
  /** Monotonic ms of the first and the last token event; 0 when none. */
  readonly firstTokenAt: number;
  readonly lastTokenAt: number;
  /** Output tokens reported by the upstream's `usage`; -1 when it reported none. */
  readonly outputTokens: number;
  readonly end: EndClass;
  /** Gaps between consecutive token events, counted in ITL_BUCKETS log buckets; undefined when fewer than two. */
  readonly gaps: Uint32Array | undefined;
  readonly maxGapMs: number;
  /**
   * veer paused the upstream at some point because the client read slowly: the stream's gaps are partly
   * the client's, so its timing figures are left out (its end class still counts).
   */
  readonly heldBack: boolean;
}

/**
 * ITL gaps go into fixed log buckets, 4 per doubling from 0.25 ms (bucket 0 is anything shorter), so a
 * gap costs a log2 and an increment on the request path and a stream's gaps merge by adding counts. A
 * bucket's value is its geometric middle: a quantile read from it is within ±9 % of the exact one.
 */
export const ITL_BUCKETS = 80;
const ITL_MIN_MS = 0.25;
const PER_DOUBLING = 4;

export function itlBucket(gapMs: number): number {
  if (!(gapMs > ITL_MIN_MS)) return 0;
  const i = 1 + Math.floor(PER_DOUBLING * Math.log2(gapMs / ITL_MIN_MS));
  return i < ITL_BUCKETS ? i : ITL_BUCKETS - 1;
}

/** The value a bucket stands for, in ms. */
export function itlBucketValue(i: number): number {
  if (i === 0) return ITL_MIN_MS / 2;
  return ITL_MIN_MS * 2 ** ((i - 0.5) / PER_DOUBLING);
}

/** The q-quantile of bucket counts (the value of the bucket holding rank q × total); undefined when empty. */
export function histogramQuantile(counts: ArrayLike<number>, q: number): number | undefined {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  let cum = 0;
  for (let i = 0; i < counts.length; i++) {
    cum += counts[i]!;
    if (cum >= rank) return itlBucketValue(i);
  }
  return itlBucketValue(counts.length - 1);
}

/** Per answer: (last − first token event) ÷ (token events − 1), in ms; undefined below two token events. */
export function tpotMs(t: TokenSummary): number | undefined {
  if (t.tokenEvents < 2) return undefined;
  return (t.lastTokenAt - t.firstTokenAt) / (t.tokenEvents - 1);
}

/**
 * Decode rate: 1000 ÷ TPOT tokens per second, scaled by tokens per event when the upstream reported its
 * output tokens (a server may send several tokens in one event); undefined when TPOT is, or is 0.
 */
export function tokensPerSecond(t: TokenSummary): number | undefined {
  const tpot = tpotMs(t);
  if (tpot === undefined || tpot <= 0) return undefined;
  const perEvent = t.outputTokens > 0 ? t.outputTokens / t.tokenEvents : 1;
  return (1000 / tpot) * perEvent;
}
