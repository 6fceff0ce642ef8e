// The errors veer itself answers with: stable codes, HTTP statuses and the JSON body they travel in.

export type ProxyErrorCode =
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'upstream_reset'
  | 'bad_gateway'
  | 'bad_request'
  | 'draining';

export const ERROR_STATUS: Readonly<Record<ProxyErrorCode, number>> = {
  upstream_unavailable: 503,
  upstream_timeout: 504,
  upstream_reset: 502,
  bad_gateway: 502,
  bad_request: 400,
  draining: 503,
};

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}
