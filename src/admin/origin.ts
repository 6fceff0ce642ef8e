// Which requests the admin listener answers at all: a Host it is known by, and no browser request from another site.

import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * A DNS-rebinding page reaches 127.0.0.1 under its own name, so the browser treats veer's answers as
 * same-origin and lets the page read them; the Host header still carries that name. An IP literal or
 * `localhost` cannot be rebound, and other names must be listed (admin.allowed_hosts). The port is not
 * compared: the name is what the attacker cannot choose, and a port-forward (kubectl, docker -p) changes
 * the port legitimately. A request without Host comes from no browser and is answered.
 */
export function hostAllowed(host: string | undefined, allowedHosts: readonly string[]): boolean {
  if (host === undefined || host === '') return true;
  const value = host.toLowerCase();
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    return end > 0 && isIP(value.slice(1, end)) === 6 && /^(:\d{1,5})?$/.test(value.slice(end + 1));
  }
  const colon = value.lastIndexOf(':');
  if (colon !== -1 && !/^\d{1,5}$/.test(value.slice(colon + 1))) return false;
  let name = colon === -1 ? value : value.slice(0, colon);
  if (name.endsWith('.')) name = name.slice(0, -1);
  return isIP(name) === 4 || name === 'localhost' || allowedHosts.includes(name);
}

/**
 * Why a request looks like it came from a page on another site, or undefined. Browsers mark their requests
 * with Sec-Fetch-Site (and Origin on most non-GET ones); anything but same-origin, or the user typing the
 * URL (`none`), is refused, so a page elsewhere cannot make veer write an audit line per request. A
 * top-level GET navigation (a link to the dashboard from a runbook) is let through: the linking page reads
 * nothing of the answer.
 */
export function crossSite(req: IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  const navigation = (req.method === 'GET' || req.method === 'HEAD') && req.headers['sec-fetch-mode'] === 'navigate';
  if (site !== undefined && site !== 'same-origin' && site !== 'none' && !navigation) {
    return `the browser marked it Sec-Fetch-Site: ${site.slice(0, 32)}`;
  }
  const origin = req.headers.origin;
  if (origin === undefined || navigation) return undefined;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return `Origin ${origin.slice(0, 64)} is not this admin address`;
  }
  if (originHost === '' || originHost !== (req.headers.host ?? '').toLowerCase()) {
    return `Origin ${origin.slice(0, 64)} is not this admin address`;
  }
  return undefined;
}
