// NGINX as a same-run reference: an unprivileged single-process nginx on 127.0.0.1, splitting on the same key header as veer.

import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { spawnProgram, stopChild } from './children.js';
import { cpuTime, rssBytes } from './proc.js';
import type { Reference } from './veer-process.js';

/** The nginx binary on PATH or in the sbin directories a non-root PATH often leaves out, or undefined. */
export function findNginx(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, 'nginx');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A port free on 127.0.0.1 a moment ago (nginx cannot be told to pick one and report it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

const hostPort = (url: string) => new URL(url).host;

/**
 * What veer does on the request path, as NGINX does it: split_clients on the same key header (x-user-id)
 * at the same weight, keep-alive upstream pools, responses relayed unbuffered, an access line per
 * request to a file (buffered, as veer's go to a pipe in batches). One process, no master: veer is one
 * event loop too, and /proc/PID then holds all of its CPU time and memory.
 */
function nginxConfig(dir: string, port: number, legacyUrl: string, newUrl: string, weightPercent: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 20000; multi_accept on; }
http {
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  access_log ${join(dir, 'access.log')} combined buffer=64k flush=1s;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  split_clients "$http_x_user_id" $veer_upstream {
    ${weightPercent}% new;
    * legacy;
  }
  upstream legacy { server ${hostPort(legacyUrl)}; keepalive 1024; keepalive_requests 1000000; }
  upstream new { server ${hostPort(newUrl)}; keepalive 1024; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://$veer_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 120s;
      add_header x-veer-upstream $veer_upstream always;
    }
  }
}
`;
}

/** Resolves once something accepts connections on the port. */
async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on ${port} within ${timeoutMs} ms`);
}

/** NGINX with its own temporary prefix in front of the two upstreams, or undefined when it is not installed. */
export async function startNginx(
  legacyUrl: string,
  newUrl: string,
  weightPercent: number,
): Promise<(Reference & { rss(): number }) | undefined> {
  const binary = findNginx();
  if (!binary) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'veer-bench-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(dir, port, legacyUrl, newUrl, weightPercent));
  let tail = '';
  const child = spawnProgram(binary, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => {
    tail = (tail + d.toString('utf8')).slice(-4096);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    await waitForPort(port, child, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    cleanup();
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
  const pid = child.pid!;
  return {
    side: 'nginx',
    label: 'NGINX',
    url: `http://127.0.0.1:${port}`,
    pid,
    cpu: () => cpuTime(pid),
    rss: () => rssBytes(pid),
    async stop() {
      // SIGQUIT: nginx's graceful stop; stopChild escalates to SIGKILL after the grace period.
      child.kill('SIGQUIT');
      await stopChild(child, 2000);
      cleanup();
    },
  };
}
