// A real Prometheus on 127.0.0.1 scraping given targets every second, and a tiny exporter whose values a test moves.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { unusedPort } from './stack.js';

export interface RunningPrometheus {
  url: string;
  /** Stops it (SIGTERM, then SIGKILL after 5 s) and removes its data; safe to call twice. */
  stop: () => Promise<void>;
  /** Waits until every target is scraped as up. */
  targetsUp: (count: number, timeoutMs?: number) => Promise<void>;
}

/** `jobName` labels the scraped targets (`job="..."` in queries). */
export async function startPrometheus(
  binary: string,
  targets: string[],
  jobName = 'targets',
): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'veer-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      `  - job_name: ${jobName}`,
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await unusedPort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid!, 'SIGTERM');
      const killer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const targetsUp = async (count: number, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}):\n${log}`);
      if (Date.now() > deadline) throw new Error(`targets never came up in prometheus:\n${log}`);
      try {
        const res = await request(`${url}/api/v1/targets?state=active`);
        const body = (await res.body.json()) as { data?: { activeTargets?: { health: string }[] } };
        const up = body.data?.activeTargets?.filter((t) => t.health === 'up').length ?? 0;
        if (up >= count) return;
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  return { url, stop, targetsUp };
}

/** An exporter serving `values` (metric with labels → number) in the text format; tests change `values`. */
export async function startExporter(
  values: Map<string, number>,
): Promise<{ target: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    const lines = [...values].map(([series, value]) => `${series} ${value}`);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    target: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
