// The SSE byte scanner: fed each response chunk as it is relayed, it counts events and classifies the stream's end.

import { ByteCapture } from './event-bytes.js';
import {
  detectFormat,
  END,
  ERROR,
  type EventBytes,
  eventKind,
  initialFormat,
  outputTokensOf,
  TOKEN,
} from './event-kind.js';
import {
  type EndClass,
  ITL_BUCKETS,
  itlBucket,
  type StreamFormat,
  type StreamFormatSetting,
  type TokenSummary,
} from './token-summary.js';

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;

/** Line fields the scanner tells apart; every other field (id, retry, unknown) is skipped. */
const NAME = 0; // still reading the field name
const DATA = 1;
const EVENT = 2;
const SKIP = 3;

/** An event's data kept per stream (head + tail); an `event:` name longer than this is not one we know. */
const DATA_HEAD = 768;
const DATA_TAIL = 512;
const NAME_MAX = 48;
/** Longest field name we need to read ("event"), plus one byte to tell "eventx" apart. */
const FIELD_MAX = 6;

const EMPTY = Buffer.alloc(0);
const D = 0x64;
const A = 0x61;
const T = 0x74;
const E = 0x65;
const V = 0x76;
const N = 0x6e;

/**
 * A state machine over bytes, never holding a chunk: chunk boundaries may fall anywhere (inside a field
 * name, between CR and LF, inside an event larger than the chunk). Lines end at LF or CRLF; an event ends
 * at a blank line. Per stream it keeps a few counters, a 1.3 KiB capture of the current event's data, and
 * (from the second token event on) an 80-bucket gap histogram. The data is searched once per event, at
 * its end, by the rules of the stream's format (event-kind.ts).
 */
export class SseScanner implements TokenSummary, EventBytes {
  readonly kind = 'sse' as const;
  format: StreamFormat;
  events = 0;
  tokenEvents = 0;
  firstTokenAt = 0;
  lastTokenAt = 0;
  outputTokens = -1;
  end: EndClass = 'truncated';
  gaps: Uint32Array | undefined;
  maxGapMs = 0;
  heldBack = false;

  // EventBytes of the event being read. Its data is read where it lies when it came whole in one chunk
  // (the usual case: no copy), else from the capture, which the bytes are copied into as they pass.
  name: Buffer = EMPTY;
  nameLen = 0;
  data: Buffer = EMPTY;
  dataStart = 0;
  dataEnd = 0;
  /** Allocated at the first event that needs it: most streams never split an event across chunks. */
  private captureBuf: ByteCapture | undefined;
  private get capture(): ByteCapture {
    this.captureBuf ??= new ByteCapture(DATA_HEAD, DATA_TAIL);
    return this.captureBuf;
  }
  /** The event's data is data[dataStart, dataEnd) of the chunk being fed, not yet copied. */
  private inChunk = false;
  get clipped(): boolean {
    return !this.inChunk && this.captureBuf !== undefined && this.captureBuf.clipped;
  }

  private detecting: boolean;
  private field = NAME;
  /** Bytes of the current line read so far (field name included). */
  private lineLen = 0;
  private readonly fieldName = new Uint8Array(FIELD_MAX);
  private fieldLen = 0;
  /** The one space after a field's colon is not part of its value. */
  private skipSpace = false;
  /** Data lines of the current event so far. */
  private dataLines = 0;
  /** Bytes of the current line's value read so far. */
  private valueLen = 0;
  private nameTooLong = false;
  private sawEnd = false;
  private sawError = false;

  constructor(setting: StreamFormatSetting, path: string) {
    const format = initialFormat(setting, path);
    this.detecting = format === undefined;
    this.format = format ?? 'generic';
  }

  /** Reads one chunk; `now` is the chunk's arrival (monotonic ms), the time of every event it ends. */
  feed(chunk: Buffer, now: number): void {
    const n = chunk.length;
    let pos = 0;
    while (pos < n) {
      if (this.field === NAME) {
        // Field names are a few bytes: read them one at a time.
        const b = chunk[pos++]!;
        if (b === LF) {
          this.endLine(now);
          continue;
        }
        this.lineLen++;
        if (b === COLON) this.classifyField();
        else if (this.fieldLen < FIELD_MAX) this.fieldName[this.fieldLen++] = b;
        else this.field = SKIP;
        continue;
      }
      const lf = chunk.indexOf(LF, pos);
      const stop = lf < 0 ? n : lf;
      if (this.skipSpace && pos < stop) {
        this.skipSpace = false;
        if (chunk[pos] === SPACE) pos++;
      }
      if (this.field === DATA) {
        if (lf >= 0 && this.dataLines === 1 && this.valueLen === 0) {
          // The event's only data line so far, whole in this chunk: read it in place.
          this.inChunk = true;
          this.data = chunk;
          this.dataStart = pos;
          this.dataEnd = stop > pos && chunk[stop - 1] === CR ? stop - 1 : stop;
        } else {
          this.capture.append(chunk, pos, stop);
        }
        this.valueLen += stop - pos;
      } else if (this.field === EVENT) this.appendName(chunk, pos, stop);
      this.lineLen += stop - pos;
      if (lf < 0) break;
      pos = lf + 1;
      this.endLine(now);
    }
    // Never hold on to a chunk: what is left of an unfinished event is copied.
    if (this.inChunk) this.materialize();
  }

  /** Copies the data read in place into the capture (the event goes on past this chunk or line). */
  private materialize(): void {
    this.inChunk = false;
    this.capture.append(this.data, this.dataStart, this.dataEnd);
    this.data = this.capture.buf;
  }

  /** A data line starts: the second and later lines join the first with a line feed. */
  private startDataLine(): void {
    if (this.dataLines++ > 0) {
      if (this.inChunk) this.materialize();
      this.capture.appendByte(LF);
    }
  }

  /** A field name ended at its colon; an empty name is a comment line. */
  private classifyField(): void {
    const f = this.fieldName;
    const len = this.fieldLen;
    this.skipSpace = true;
    if (len === 4 && f[0] === D && f[1] === A && f[2] === T && f[3] === A) {
      this.startDataLine();
      this.field = DATA;
    } else if (len === 5 && f[0] === E && f[1] === V && f[2] === E && f[3] === N && f[4] === T) {
      if (this.name === EMPTY) this.name = Buffer.allocUnsafe(NAME_MAX);
      this.nameLen = 0;
      this.nameTooLong = false;
      this.field = EVENT;
    } else {
      this.field = SKIP;
    }
  }

  private appendName(chunk: Buffer, start: number, end: number): void {
    const n = end - start;
    if (this.nameLen + n > NAME_MAX) {
      this.nameTooLong = true;
      return;
    }
    chunk.copy(this.name, this.nameLen, start, end);
    this.nameLen += n;
  }

  private endLine(now: number): void {
    const f = this.fieldName;
    if (this.field === NAME) {
      const len = this.fieldLen > 0 && f[this.fieldLen - 1] === CR ? this.fieldLen - 1 : this.fieldLen;
      if (this.lineLen === 0 || (this.lineLen === 1 && f[0] === CR)) {
        this.dispatch(now);
      } else if (len === 4 && f[0] === D && f[1] === A && f[2] === T && f[3] === A) {
        // `data` without a colon: a data line with an empty value.
        this.startDataLine();
      }
    } else if (this.field === EVENT) {
      if (this.nameLen > 0 && this.name[this.nameLen - 1] === CR) this.nameLen--;
      if (this.nameTooLong) this.nameLen = 0;
    } else if (this.field === DATA) {
      // The CR of a CRLF is not part of the value.
      const c = this.captureBuf;
      if (c !== undefined && c.length > 0 && c.buf[c.length - 1] === CR) {
        c.length--;
        c.total--;
      }
    }
    this.field = NAME;
    this.lineLen = 0;
    this.valueLen = 0;
    this.fieldLen = 0;
    this.skipSpace = false;
  }

  /** A blank line: the event is complete. Events without data are not events (SSE dispatches none). */
  private dispatch(now: number): void {
    if (this.dataLines > 0) {
      if (!this.inChunk) {
        this.data = this.capture.buf;
        this.dataStart = 0;
        this.dataEnd = this.capture.length;
      }
      this.events++;
      if (this.detecting) {
        this.format = detectFormat(this);
        this.detecting = false;
      }
      const kind = eventKind(this.format, this);
      if (kind & TOKEN) this.token(now);
      if (kind & END) this.sawEnd = true;
      if (kind & ERROR) this.sawError = true;
      if ((kind & TOKEN) === 0 || kind & END) {
        const tokens = outputTokensOf(this.format, this);
        if (tokens >= 0) this.outputTokens = tokens;
      }
    }
    this.dataLines = 0;
    this.nameLen = 0;
    this.inChunk = false;
    this.data = EMPTY;
    this.captureBuf?.reset();
  }

  private token(now: number): void {
    if (this.tokenEvents++ === 0) this.firstTokenAt = now;
    else {
      const gap = now - this.lastTokenAt;
      this.gaps ??= new Uint32Array(ITL_BUCKETS);
      this.gaps[itlBucket(gap)]!++;
      if (gap > this.maxGapMs) this.maxGapMs = gap;
    }
    this.lastTokenAt = now;
  }

  /**
   * The stream is over: `upstream_end` when the upstream ended it cleanly, `cut` when it failed mid-stream
   * (reset, idle timeout), `client_abort` when the client (or veer's drain) cut it. An event without its
   * blank line at the end is dropped, as an SSE client drops it.
   */
  finish(how: 'upstream_end' | 'cut' | 'client_abort'): EndClass {
    let end: EndClass;
    if (how === 'client_abort') end = 'client_abort';
    else if (this.sawError) end = 'inband_error';
    else if (how === 'cut') end = 'truncated';
    else if (this.format === 'generic') end = this.events > 0 ? 'complete' : 'empty';
    else if (!this.sawEnd) end = 'truncated';
    else end = this.tokenEvents > 0 ? 'complete' : 'empty';
    this.end = end;
    return end;
  }
}
