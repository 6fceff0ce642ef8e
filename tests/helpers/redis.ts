// A throwaway redis-server on 127.0.0.1 for fleet tests, and a TCP relay to it that can be cut (a partition).

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1', () => c.write('PING\r\n'));
      c.on('data', (d) => {
        c.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return child;
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

/** Forwards a port to redis; down() cuts every connection and refuses new ones until up() again. */
export class RedisRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Holds each reply from redis this long (a slow network), so tests can act while a command is out. */
  delayMs = 0;
  /** Holds replies that match this (e.g. a script's `:-1`) for `holdMs`: a command run, its answer late. */
  holdReply: { match: (chunk: string) => boolean; holdMs: number } | undefined;

  constructor(
    readonly port: number,
    private readonly target: number,
  ) {}

  async up(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.target, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      client.pipe(upstream);
      // Replies keep their order when the delay changes while some are held (RESP has no ids to match them by).
      let held = Promise.resolve();
      upstream.on('data', (d: Buffer) => {
        const hold = this.holdReply?.match(d.toString('latin1')) ? this.holdReply.holdMs : 0;
        const due = Date.now() + Math.max(this.delayMs, hold);
        held = held.then(async () => {
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          if (client.writable) client.write(d);
        });
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      for (const s of [client, upstream]) s.on('error', end).on('close', end);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', () => r()));
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}
