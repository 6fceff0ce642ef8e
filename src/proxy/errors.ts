// How the proxy answers with veer's own errors (codes and statuses are in the catalogue, src/errors.ts).

import type { Duplex } from 'node:stream';
import { errorBody, type ProxyErrorCode, statusOf } from '../errors.js';

export { errorBody, type ProxyErrorCode } from '../errors.js';

/** Each proxy error code's status, from the catalogue in src/errors.ts. */
export const ERROR_STATUS: Readonly<Record<ProxyErrorCode, number>> = {
  upstream_unavailable: statusOf('upstream_unavailable'),
  upstream_timeout: statusOf('upstream_timeout'),
  upstream_reset: statusOf('upstream_reset'),
  bad_gateway: statusOf('bad_gateway'),
  bad_request: statusOf('bad_request'),
  request_timeout: statusOf('request_timeout'),
};

/** The error veer destroys an HTTP/2 stream with when its upstream failed after the headers went out. */
export const UPSTREAM_FAILED_MID_STREAM = new Error('upstream failed mid-stream');

/** HTTP/2 streams veer reset itself (a failed upstream, a stalled reader): not the client's resets. */
export const cutByVeer = new WeakSet<object>();

/** Why a malformed or too-slow HTTP/1.1 request was turned away before it became a request. */
export type ClientErrorReason = 'bad_request' | 'header_too_large' | 'request_timeout';

/**
 * An http.Server 'clientError' (a request that cannot be parsed, headers too large, or too slow): the
 * client gets a JSON 400/431/408 and the connection closes. Returns why, or undefined when the client
 * is gone already and the socket is only destroyed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): ClientErrorReason | undefined {
  // As node's own handler does: no answer into a response already under way (a body that timed out
  // while its response streams), it would corrupt what the client is reading.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!socket.writable || socket.destroyed || err.code === 'ECONNRESET' || inFlight?.headersSent) {
    socket.destroy();
    return undefined;
  }
  const reason: ClientErrorReason =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'request_timeout'
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? 'header_too_large'
        : 'bad_request';
  const status = CLIENT_ERROR_STATUS[reason];
  const body = errorBody(reason === 'request_timeout' ? reason : 'bad_request', err.code ?? 'malformed request');
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  return reason;
}

const CLIENT_ERROR_STATUS: Readonly<Record<ClientErrorReason, string>> = {
  bad_request: '400 Bad Request',
  header_too_large: '431 Request Header Fields Too Large',
  request_timeout: '408 Request Timeout',
};
