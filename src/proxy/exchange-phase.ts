// The named phases of one proxied request (pingora names its request's phases the same way).

/**
 * The phases of one exchange, in order. A fallback to legacy goes back to Connecting; any phase may
 * jump to Done (the client left, a timer fired, the upstream failed).
 */
export const Phase = {
  /** Dispatched to undici: waiting for a connection (queued, or connecting). Nothing reached the upstream. */
  Connecting: 0,
  /** undici is sending the request; the response head has not come. */
  Requesting: 1,
  /** The response head went to the client; no body byte yet (the first-byte timer runs). */
  Responding: 2,
  /** Body chunks are relayed (the idle timer runs; the stall timer while the client is behind). */
  Streaming: 3,
  /** Recorded once; nothing more is written to the client. */
  Done: 4,
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];
