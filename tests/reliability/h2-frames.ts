// Raw HTTP/2 frames written over node:net, for abuse that well-behaved clients (node's, nghttp2's) refuse to send.

import net from 'node:net';

export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK literal header field without indexing, new name (RFC 7541 §6.2.2); lengths below 127. */
export function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  if (n.length > 126 || v.length > 126) throw new Error('literal() encodes short strings only');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

/** A GET of `path` as an HPACK block: :method GET, :scheme http (static table) and literal :path, :authority. */
export function getBlock(path = '/v1/models', extra: Buffer[] = []): Buffer {
  return Buffer.concat([
    Buffer.from([0x82, 0x86]),
    literal(':path', path),
    literal(':authority', 'veer.test'),
    ...extra,
  ]);
}

export function settings(entries: [number, number][] = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, payload);
}

export function rstStream(streamId: number, code = 0x8 /* CANCEL */): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, p);
}

export function ping(data = 0n): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64BE(data);
  return frame(FRAME.PING, 0, 0, p);
}

export interface ParsedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/**
 * A raw h2c client connection: writes whatever it is told and parses the frames veer sends back, so a
 * test can see GOAWAY (and its error code) and whether the connection was closed.
 */
export class RawH2 {
  readonly socket: net.Socket;
  readonly frames: ParsedFrame[] = [];
  closed = false;
  /** Bytes veer sent back. */
  received = 0;
  private pending: Buffer = Buffer.alloc(0);
  readonly ready: Promise<void>;
  readonly done: Promise<void>;

  constructor(port: number, options: { read?: boolean } = {}) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => {});
    this.ready = new Promise((resolve) => this.socket.once('connect', () => resolve()));
    this.done = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.closed = true;
        resolve();
      }),
    );
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (options.read === false) this.socket.pause();
  }

  /** Preface and an empty SETTINGS, as every client starts. */
  async open(): Promise<void> {
    await this.ready;
    this.write(Buffer.concat([PREFACE, settings()]));
  }

  /** Acknowledges veer's SETTINGS, which is when node starts to enforce them. */
  ack(): void {
    this.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
  }

  /** The response HEADERS of `streamId`, if any; a status outside HPACK's static table shows as ASCII. */
  responseHeaders(streamId: number): Buffer | undefined {
    return this.frames.find((f) => f.type === FRAME.HEADERS && f.streamId === streamId)?.payload;
  }

  write(data: Buffer): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    return this.socket.write(data);
  }

  /** Writes `data` and waits for the kernel buffer to take it (or the connection to close). */
  async writeAll(data: Buffer): Promise<boolean> {
    if (this.write(data)) return true;
    if (this.closed) return false;
    await Promise.race([new Promise((r) => this.socket.once('drain', r)), this.done]);
    return !this.closed;
  }

  goaway(): { lastStreamId: number; errorCode: number } | undefined {
    const f = this.frames.find((x) => x.type === FRAME.GOAWAY);
    if (!f) return undefined;
    return { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, errorCode: f.payload.readUInt32BE(4) };
  }

  count(type: number): number {
    return this.frames.filter((f) => f.type === type).length;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.received += chunk.length;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 9) {
      const len = this.pending.readUIntBE(0, 3);
      if (this.pending.length < 9 + len) break;
      const f: ParsedFrame = {
        type: this.pending[3]!,
        flags: this.pending[4]!,
        streamId: this.pending.readUInt32BE(5) & 0x7fffffff,
        payload: this.pending.subarray(9, 9 + len),
      };
      // Keep DATA frames' headers only: a flood test must not hold every byte it is sent.
      if (f.type === FRAME.DATA) f.payload = Buffer.alloc(0);
      else f.payload = Buffer.from(f.payload);
      this.frames.push(f);
      this.pending = this.pending.subarray(9 + len);
    }
  }
}

export const ERROR_CODE = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;
