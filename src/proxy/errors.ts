// How the proxy answers with veer's own errors (codes and statuses are in the catalogue, src/errors.ts).

import type { Duplex } from 'node:stream';
import { errorBody, type ProxyErrorCode, statusOf } from '../errors.js';

export { errorBody, type ProxyErrorCode } from '../errors.js';

/** Each proxy error code's status, from the catalogue in src/errors.ts. */
export const ERROR_STATUS: Readonly<Record<ProxyErrorCode, number>> = {
  upstream_unavailable: statusOf('upstream_unavailable'),
  upstream_saturated: statusOf('upstream_saturated'),
  upstream_timeout: statusOf('upstream_timeout'),
  upstream_reset: statusOf('upstream_reset'),
  bad_gateway: statusOf('bad_gateway'),
  bad_request: statusOf('bad_request'),
  request_timeout: statusOf('request_timeout'),
  unsupported_transfer_encoding: statusOf('unsupported_transfer_encoding'),
};

/** Errors that say the upstream cannot be reached at all (refused, unresolvable, unroutable, connect timeout). */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Errors that undici reports before the request was written: nothing reached the upstream. A pool closed
 * or destroyed under a waiting request counts too (a shadow copy's own pool closing does not: see there).
 */
export const CONNECT_ERROR_CODES: ReadonlySet<string> = new Set([
  ...UNREACHABLE_CODES,
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

/** The error veer destroys an HTTP/2 stream with when its upstream failed after the headers went out. */
export const UPSTREAM_FAILED_MID_STREAM = new Error('upstream failed mid-stream');

/** HTTP/2 streams veer reset itself (a failed upstream, a stalled reader): not the client's resets. */
export const cutByVeer = new WeakSet<object>();

/** Why a malformed or too-slow HTTP/1.1 request was turned away before it became a request. */
export type ClientErrorReason = 'bad_request' | 'header_too_large' | 'request_timeout';

interface PendingResponse {
  headersSent: boolean;
  writableFinished: boolean;
  req?: { complete: boolean };
  once(event: 'finish' | 'close', listener: () => void): unknown;
}

/** Sockets whose parse error is already being answered: llhttp reports it again on every later read. */
const answering = new WeakSet<Duplex>();

/**
 * An http.Server 'clientError' (a request that cannot be parsed, headers too large, or too slow): the
 * client gets a JSON 400/431/408 and the connection closes. Returns why, or undefined when the client
 * is gone already and the socket is only destroyed.
 *
 * A malformed request pipelined behind one still being answered is answered after that response, never
 * in its place: the client would take the 400 for the earlier request (which the upstream did run) and
 * might send it again.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): ClientErrorReason | undefined {
  if (answering.has(socket)) return undefined;
  const pending = (socket as { _httpMessage?: PendingResponse | null })._httpMessage;
  if (!socket.writable || socket.destroyed || err.code === 'ECONNRESET') {
    socket.destroy();
    return undefined;
  }
  const reason = clientErrorReason(err);
  // The error is in a request after the one being answered (that one is complete): wait for its response.
  if (pending && !pending.writableFinished && pending.req?.complete && reason !== 'request_timeout') {
    answering.add(socket);
    afterPending(socket, () => writeClientError(socket, reason, err));
    return reason;
  }
  // As node's own handler does: no answer into a response already under way (a body that timed out
  // while its response streams), it would corrupt what the client is reading.
  if (pending?.headersSent) {
    socket.destroy();
    return undefined;
  }
  writeClientError(socket, reason, err);
  return reason;
}

/**
 * Writes `answer` and ends the socket once every response pending on it is out: an answer veer writes on
 * the raw socket (a CONNECT refused) must not overtake the responses to requests pipelined before it.
 */
export function endAfterPending(socket: Duplex, answer: string): void {
  afterPending(socket, () => {
    if (!socket.destroyed && socket.writable) socket.end(answer);
  });
}

/** Runs `then` once no response is pending on the socket (node hands it queued pipelined ones in turn). */
function afterPending(socket: Duplex, then: () => void): void {
  const pending = (socket as { _httpMessage?: PendingResponse | null })._httpMessage;
  if (socket.destroyed) return;
  if (!pending || pending.writableFinished) {
    then();
    return;
  }
  // node assigns the next queued response on the same 'finish', before this listener runs.
  pending.once('finish', () => afterPending(socket, then));
  pending.once('close', () => {
    if (!pending.writableFinished) socket.destroy();
  });
}

function clientErrorReason(err: NodeJS.ErrnoException): ClientErrorReason {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout';
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'header_too_large';
  return 'bad_request';
}

function writeClientError(socket: Duplex, reason: ClientErrorReason, err: NodeJS.ErrnoException): void {
  if (socket.destroyed || !socket.writable) return;
  const status = CLIENT_ERROR_STATUS[reason];
  const body = errorBody(reason === 'request_timeout' ? reason : 'bad_request', err.code ?? 'malformed request');
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`,
  );
}

const CLIENT_ERROR_STATUS: Readonly<Record<ClientErrorReason, string>> = {
  bad_request: '400 Bad Request',
  header_too_large: '431 Request Header Fields Too Large',
  request_timeout: '408 Request Timeout',
};
