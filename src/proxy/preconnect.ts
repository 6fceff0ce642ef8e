// Connections opened to an upstream at start, before any request, and handed to its pool's first requests.

import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';

/**
 * undici has no warm-up API, but a pool takes a `connect` function: this one hands out sockets opened
 * ahead of time, then connects as usual. A warm socket is kept at most `keepMs` (the pool's own idle limit,
 * keep_alive_timeout), so none that the upstream may have dropped as idle is ever handed to a request;
 * one that closes before it is used just leaves the stash.
 */
export class WarmConnector {
  private readonly stash: Socket[] = [];
  /** The stash's own listeners on each warm socket, removed when the socket is handed out. */
  private readonly listeners = new WeakMap<Socket, { close: () => void; error: () => void }>();
  readonly connect: buildConnector.connector;

  constructor(
    private readonly base: buildConnector.connector,
    private readonly keepMs: number,
  ) {
    this.connect = (options, callback) => {
      let socket = this.stash.pop();
      while (socket && (socket.destroyed || !socket.writable)) socket = this.stash.pop();
      if (socket) {
        const own = this.listeners.get(socket);
        if (own) {
          socket.off('close', own.close);
          socket.off('error', own.error);
        }
        socket.ref();
        const handed = socket;
        setImmediate(() => callback(null, handed));
        return;
      }
      this.base(options, callback);
    };
  }

  /** Opens `count` connections to `url` now; failures are left for the first requests to meet. */
  warm(url: URL, count: number): void {
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    for (let i = 0; i < count; i++) {
      this.base({ hostname: url.hostname, host: url.host, protocol: url.protocol, port }, (err, socket) => {
        if (err || !socket) return;
        // Not a reason to keep the process alive, and dropped once it may have gone stale.
        socket.unref();
        const own = { close: () => this.forget(socket), error: () => {} };
        this.listeners.set(socket, own);
        socket.on('error', own.error);
        socket.once('close', own.close);
        setTimeout(() => this.expire(socket), this.keepMs).unref();
        this.stash.push(socket);
      });
    }
  }

  get size(): number {
    return this.stash.length;
  }

  private forget(socket: Socket): void {
    const i = this.stash.indexOf(socket);
    if (i >= 0) this.stash.splice(i, 1);
  }

  private expire(socket: Socket): void {
    const i = this.stash.indexOf(socket);
    if (i < 0) return;
    this.stash.splice(i, 1);
    socket.destroy();
  }

  /** Closes the connections not handed out (the pool is closing). */
  close(): void {
    for (const socket of this.stash.splice(0)) socket.destroy();
  }
}
