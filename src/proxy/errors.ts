// The errors veer itself answers with: stable codes, HTTP statuses and the JSON body they travel in.

export type ProxyErrorCode =
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'upstream_reset'
  | 'bad_gateway'
  | 'bad_request'
  | 'request_timeout'
  | 'draining';

export const ERROR_STATUS: Readonly<Record<ProxyErrorCode, number>> = {
  upstream_unavailable: 503,
  upstream_timeout: 504,
  upstream_reset: 502,
  bad_gateway: 502,
  bad_request: 400,
  request_timeout: 408,
  draining: 503,
};

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/** The error veer destroys an HTTP/2 stream with when its upstream failed after the headers went out. */
export const UPSTREAM_FAILED_MID_STREAM = new Error('upstream failed mid-stream');

/** HTTP/2 streams veer reset itself (a failed upstream, a stalled reader): not the client's resets. */
export const cutByVeer = new WeakSet<object>();
