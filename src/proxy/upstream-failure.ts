// Why an upstream request failed, read from undici's error and what the exchange knows: the outcome the
// window and metrics count, and the error veer answers with.

import type { UpstreamName } from '../config/types.js';
import type { Outcome } from '../measure/outcome.js';
import { CONNECT_ERROR_CODES, type ProxyErrorCode } from './errors.js';

/** What the exchange knew when undici reported the error. */
export interface FailureFacts {
  upstream: UpstreamName;
  /** The drain's grace period is over: veer itself cut what was still open. */
  closing: boolean;
  /** Why the response head could not be relayed, when that was the abort's cause. */
  unrelayable: string | undefined;
  /** The first-byte timer fired, and whether the client was still sending its body then. */
  timedOut: boolean;
  clientSlow: boolean;
  /** The idle timer fired between body chunks. */
  idledOut: boolean;
  /** Nothing reached the upstream yet (no connection, or not written). */
  connecting: boolean;
  /** A refused connection to new may be retried on legacy (upstreams.fallback_on_connect_error). */
  mayFallBack: boolean;
}

export type FailureVerdict =
  | { kind: 'cut_by_veer' }
  | { kind: 'fall_back' }
  | { kind: 'fail'; outcome: Outcome; code: ProxyErrorCode; message: string };

function fail(outcome: Outcome, code: ProxyErrorCode, message: string): FailureVerdict {
  return { kind: 'fail', outcome, code, message };
}

/** The first matching cause wins: veer's own doing first, then timers veer armed, then what undici saw. */
export function classifyFailure(err: Error, facts: FailureFacts): FailureVerdict {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const name = facts.upstream;
  // Shutting down: the client's stream was cut by veer; the upstream did nothing wrong.
  if (facts.closing) return { kind: 'cut_by_veer' };
  if (facts.unrelayable) return fail('reset', 'bad_gateway', facts.unrelayable);
  // Not valid HTTP/1.1 (an invalid header character, a bad chunk): the upstream's fault, and a response veer
  // cannot relay.
  if (err.name === 'HTTPParserError')
    return fail('reset', 'bad_gateway', `${name} upstream sent an invalid response (${err.message})`);
  if (facts.timedOut && facts.clientSlow)
    return fail(
      'client_abort',
      'request_timeout',
      'the request body did not arrive in time (upstream ttfb_timeout); the upstream was not at fault',
    );
  if (facts.timedOut) return fail('timeout', 'upstream_timeout', `${name} upstream sent no first byte in time`);
  if (facts.idledOut)
    return fail('timeout', 'upstream_timeout', `${name} upstream went silent for longer than idle_timeout`);
  if (facts.connecting && CONNECT_ERROR_CODES.has(code)) {
    if (facts.mayFallBack) return { kind: 'fall_back' };
    return fail('connect_error', 'upstream_unavailable', `${name} upstream is unavailable (${code})`);
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return fail('timeout', 'upstream_timeout', `${name} upstream went silent (${code})`);
  return fail('reset', 'upstream_reset', `${name} upstream closed the connection (${code || err.message})`);
}
