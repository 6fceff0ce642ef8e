import { describe, expect, it } from 'vitest';
import { classifyFailure, type FailureFacts } from '../../src/proxy/upstream-failure.js';

// How an exchange names an upstream failure: the outcome the SLO window counts and the error the client gets.

const facts = (over: Partial<FailureFacts> = {}): FailureFacts => ({
  upstream: 'new',
  closing: false,
  unrelayable: undefined,
  timedOut: false,
  clientSlow: false,
  idledOut: false,
  connecting: false,
  mayFallBack: false,
  ...over,
});

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });
const parserError = Object.assign(new Error('Invalid header value char'), { name: 'HTTPParserError' });

describe('classifyFailure', () => {
  it('counts what veer cut while shutting down as its own doing, whatever undici saw', () => {
    expect(classifyFailure(coded('ECONNREFUSED'), facts({ closing: true, timedOut: true }))).toEqual({
      kind: 'cut_by_veer',
    });
  });

  it('answers a head veer could not relay, and an invalid response, with bad_gateway', () => {
    expect(classifyFailure(coded('UND_ERR_ABORTED'), facts({ unrelayable: 'bad header' }))).toMatchObject({
      outcome: 'reset',
      code: 'bad_gateway',
      message: 'bad header',
    });
    expect(classifyFailure(parserError, facts())).toMatchObject({ outcome: 'reset', code: 'bad_gateway' });
  });

  it('blames the client, not the upstream, for a first-byte timeout while its body was still coming', () => {
    expect(classifyFailure(coded('UND_ERR_ABORTED'), facts({ timedOut: true, clientSlow: true }))).toMatchObject({
      outcome: 'client_abort',
      code: 'request_timeout',
    });
    expect(classifyFailure(coded('UND_ERR_ABORTED'), facts({ timedOut: true }))).toMatchObject({
      outcome: 'timeout',
      code: 'upstream_timeout',
      message: 'new upstream sent no first byte in time',
    });
  });

  it('counts a silence past idle_timeout, and undici’s own timeouts, as timeouts', () => {
    expect(classifyFailure(coded('UND_ERR_ABORTED'), facts({ idledOut: true }))).toMatchObject({
      outcome: 'timeout',
      code: 'upstream_timeout',
    });
    expect(classifyFailure(coded('UND_ERR_HEADERS_TIMEOUT'), facts())).toMatchObject({ outcome: 'timeout' });
    expect(classifyFailure(coded('UND_ERR_BODY_TIMEOUT'), facts())).toMatchObject({ outcome: 'timeout' });
  });

  it('falls back to legacy only for a connection new refused before anything was sent', () => {
    expect(classifyFailure(coded('ECONNREFUSED'), facts({ connecting: true, mayFallBack: true }))).toEqual({
      kind: 'fall_back',
    });
    expect(classifyFailure(coded('ECONNREFUSED'), facts({ connecting: true }))).toMatchObject({
      outcome: 'connect_error',
      code: 'upstream_unavailable',
      message: 'new upstream is unavailable (ECONNREFUSED)',
    });
    // The same error once the request was on a connection may have reached the upstream: a reset.
    expect(classifyFailure(coded('ECONNRESET'), facts({ mayFallBack: true }))).toMatchObject({
      outcome: 'reset',
      code: 'upstream_reset',
      message: 'new upstream closed the connection (ECONNRESET)',
    });
  });

  it('names the error message when undici gave no code', () => {
    expect(classifyFailure(new Error('other side closed'), facts({ upstream: 'legacy' }))).toMatchObject({
      message: 'legacy upstream closed the connection (other side closed)',
    });
  });
});
