// The SSE scanner and the JSON answer scanner: counts and end classes of recorded streams, whatever the chunking.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ByteCapture } from '../../src/measure/event-bytes.js';
import { JsonAnswerScanner } from '../../src/measure/json-scan.js';
import { SseScanner } from '../../src/measure/sse-scan.js';
import { scannerFor } from '../../src/measure/token-scanner.js';
import type { StreamFormatSetting } from '../../src/measure/token-summary.js';
import { histogramQuantile, tokensPerSecond, tpotMs } from '../../src/measure/token-summary.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/streams/${name}`, import.meta.url));

interface Counts {
  format: string;
  events: number;
  tokenEvents: number;
  outputTokens: number;
  end: string;
}

function scan(chunks: Buffer[], path: string, setting: StreamFormatSetting = 'auto'): SseScanner {
  const s = new SseScanner(setting, path);
  for (const c of chunks) s.feed(c, 1);
  s.finish('upstream_end');
  return s;
}

function counts(s: SseScanner): Counts {
  return { format: s.format, events: s.events, tokenEvents: s.tokenEvents, outputTokens: s.outputTokens, end: s.end };
}

const crlf = (b: Buffer) => Buffer.from(b.toString('utf8').replace(/\n/g, '\r\n'));

const RECORDED: [string, string, Counts][] = [
  [
    'openai-chat.sse',
    '/v1/chat/completions',
    { format: 'openai', events: 7, tokenEvents: 3, outputTokens: 3, end: 'complete' },
  ],
  [
    'openai-completions.sse',
    '/v1/completions',
    { format: 'openai', events: 4, tokenEvents: 3, outputTokens: -1, end: 'complete' },
  ],
  [
    'responses.sse',
    '/v1/responses',
    { format: 'responses', events: 6, tokenEvents: 2, outputTokens: 2, end: 'complete' },
  ],
  [
    'anthropic.sse',
    '/v1/messages',
    { format: 'anthropic', events: 8, tokenEvents: 2, outputTokens: 15, end: 'complete' },
  ],
  ['generic.sse', '/events', { format: 'generic', events: 3, tokenEvents: 3, outputTokens: -1, end: 'complete' }],
  [
    'openai-error.sse',
    '/v1/chat/completions',
    { format: 'openai', events: 3, tokenEvents: 1, outputTokens: -1, end: 'inband_error' },
  ],
  [
    'anthropic-error.sse',
    '/v1/messages',
    { format: 'anthropic', events: 3, tokenEvents: 1, outputTokens: 1, end: 'inband_error' },
  ],
  [
    'responses-failed.sse',
    '/v1/responses',
    { format: 'responses', events: 2, tokenEvents: 1, outputTokens: -1, end: 'inband_error' },
  ],
];

describe('SSE scanner', () => {
  for (const [file, path, expected] of RECORDED) {
    it(`reads ${file} the same at every split point, LF and CRLF`, () => {
      for (const body of [fixture(file), crlf(fixture(file))]) {
        expect(counts(scan([body], path))).toEqual(expected);
        for (let i = 1; i < body.length; i++) {
          const got = counts(scan([body.subarray(0, i), body.subarray(i)], path));
          if (got.events !== expected.events || got.end !== expected.end || got.tokenEvents !== expected.tokenEvents) {
            throw new Error(`${file} split at ${i}: ${JSON.stringify(got)}`);
          }
          expect(got).toEqual(expected);
        }
      }
    });

    it(`reads ${file} fed one byte at a time, and in three random pieces`, () => {
      const body = fixture(file);
      const bytes = Array.from(body, (b) => Buffer.from([b]));
      expect(counts(scan(bytes, path))).toEqual(expected);
      for (let k = 0; k < 200; k++) {
        const a = 1 + Math.floor(Math.random() * (body.length - 2));
        const b = a + 1 + Math.floor(Math.random() * (body.length - a - 1));
        expect(counts(scan([body.subarray(0, a), body.subarray(a, b), body.subarray(b)], path))).toEqual(expected);
      }
    });
  }

  it('tells the format from the first event when the path says nothing', () => {
    expect(scan([fixture('anthropic.sse')], '/proxy/x').format).toBe('anthropic');
    expect(scan([fixture('responses.sse')], '/proxy/x').format).toBe('responses');
    expect(scan([fixture('openai-chat.sse')], '/proxy/x').format).toBe('openai');
    expect(scan([fixture('generic.sse')], '/proxy/x').format).toBe('generic');
    // A configured format wins over the path.
    expect(scan([fixture('openai-chat.sse')], '/v1/chat/completions', 'generic')).toMatchObject({
      format: 'generic',
      tokenEvents: 7,
    });
  });

  it('counts a stream that ends without its terminal event as truncated', () => {
    const body = fixture('openai-chat.sse').toString('utf8');
    const cut = body.slice(
      0,
      body.indexOf(
        'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{},',
      ),
    );
    expect(scan([Buffer.from(cut)], '/v1/chat/completions')).toMatchObject({ end: 'truncated', tokenEvents: 3 });
    const anthropic = fixture('anthropic.sse').toString('utf8');
    const noStop = anthropic.slice(0, anthropic.indexOf('event: message_stop'));
    expect(scan([Buffer.from(noStop)], '/v1/messages')).toMatchObject({ end: 'truncated', outputTokens: 15 });
    // An event without its blank line at the end is dropped, as a client drops it.
    expect(
      scan([Buffer.from('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n')], '/v1/chat/completions'),
    ).toMatchObject({ end: 'truncated', events: 1 });
  });

  it('counts a terminated stream without content as empty', () => {
    const body =
      'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n' +
      'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
    expect(scan([Buffer.from(body)], '/v1/chat/completions')).toMatchObject({
      end: 'empty',
      events: 3,
      tokenEvents: 0,
    });
    expect(scan([Buffer.from(': only a comment\n\n')], '/events')).toMatchObject({ end: 'empty', events: 0 });
  });

  it('a cut stream is truncated, unless it carried an error; a client abort is the client’s', () => {
    const s = new SseScanner('auto', '/v1/chat/completions');
    s.feed(fixture('openai-chat.sse').subarray(0, 400), 1);
    expect(s.finish('cut')).toBe('truncated');
    const e = new SseScanner('auto', '/v1/chat/completions');
    e.feed(fixture('openai-error.sse'), 1);
    expect(e.finish('client_abort')).toBe('client_abort');
  });

  it('reads an event larger than a chunk, with memory bounded per stream', () => {
    const content = 'x'.repeat(200_000);
    const body = Buffer.from(
      `data: {"choices":[{"index":0,"delta":{"content":"${content}"},"finish_reason":"stop"}],"usage":{"completion_tokens":77}}\n\ndata: [DONE]\n\n`,
    );
    for (const size of [1, 7, 1000, 65_536]) {
      const s = new SseScanner('auto', '/v1/chat/completions');
      for (let i = 0; i < body.length; i += size) s.feed(body.subarray(i, i + size), 1);
      s.finish('upstream_end');
      expect(counts(s)).toEqual({ format: 'openai', events: 2, tokenEvents: 1, outputTokens: 77, end: 'complete' });
      expect(s.data.length).toBeLessThan(2048);
    }
  });

  it('joins multi-line data with a line feed and ignores comments between data lines', () => {
    const body =
      'data: {"choices":[{"delta":\n: a comment\ndata: {"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
    expect(counts(scan([Buffer.from(body)], '/v1/chat/completions'))).toMatchObject({
      events: 2,
      tokenEvents: 1,
      end: 'complete',
    });
  });

  it('times token events by their chunk: TPOT, gaps and decode rate', () => {
    const ev = (t: string) => Buffer.from(`data: {"choices":[{"index":0,"delta":{"content":"${t}"}}]}\n\n`);
    const s = new SseScanner('openai', '/x');
    s.feed(ev('a'), 100);
    s.feed(ev('b'), 110);
    s.feed(Buffer.concat([ev('c'), ev('d')]), 150);
    s.feed(Buffer.from('data: {"choices":[],"usage":{"completion_tokens":8}}\n\ndata: [DONE]\n\n'), 160);
    expect(s.finish('upstream_end')).toBe('complete');
    expect(s).toMatchObject({ tokenEvents: 4, firstTokenAt: 100, lastTokenAt: 150, maxGapMs: 40, outputTokens: 8 });
    expect(tpotMs(s)).toBeCloseTo(50 / 3);
    // 8 tokens in 4 events: two tokens per event.
    expect(tokensPerSecond(s)).toBeCloseTo((1000 / (50 / 3)) * 2);
    const gaps = s.gaps!;
    expect(gaps.reduce((a, b) => a + b, 0)).toBe(3);
    expect(histogramQuantile(gaps, 0.99)! / 40).toBeGreaterThan(0.91);
    expect(histogramQuantile(gaps, 0.99)! / 40).toBeLessThan(1.1);
    expect(histogramQuantile(gaps, 0.01)).toBeLessThan(0.25);
  });
});

describe('byte capture', () => {
  it('holds the first head and last tail bytes of what is appended, in any chunking, as it grows', () => {
    const whole = Buffer.from(Array.from({ length: 5000 }, (_, i) => 33 + ((i * 7) % 90)));
    for (const size of [1, 3, 100, 1023, 1024, 1500, 5000]) {
      for (const length of [10, 1024, 1025, 2047, 3000, 5000]) {
        const capture = new ByteCapture(1024, 1024);
        for (let i = 0; i < length; i += size) capture.append(whole, i, Math.min(length, i + size));
        const kept =
          length <= 2048
            ? whole.subarray(0, length)
            : Buffer.concat([whole.subarray(0, 1024), whole.subarray(length - 1024, length)]);
        expect(capture.buf.subarray(0, capture.length).equals(kept), `chunks of ${size}, ${length} bytes`).toBe(true);
        expect(capture.total).toBe(length);
        expect(capture.clipped).toBe(length > 2048);
      }
    }
  });
});

describe('JSON answer scanner', () => {
  const json = (body: string) => {
    const s = new JsonAnswerScanner();
    const b = Buffer.from(body);
    for (let i = 0; i < b.length; i += 5) s.feed(b.subarray(i, i + 5), 1);
    s.finish('upstream_end');
    return { end: s.end, outputTokens: s.outputTokens };
  };

  it('reads usage, emptiness and a top-level error', () => {
    expect(
      json(
        '{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":5,"total_tokens":6}}',
      ),
    ).toEqual({ end: 'complete', outputTokens: 5 });
    expect(json('{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"stop"}]}')).toEqual({
      end: 'empty',
      outputTokens: -1,
    });
    expect(json('{"choices":[{"message":{"content":"x"}}],"usage":{"completion_tokens":0}}').end).toBe('empty');
    expect(json('{"error": {"message": "bad", "type": "server_error"}}').end).toBe('inband_error');
    expect(
      json('{"type":"message","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":2,"output_tokens":9}}'),
    ).toEqual({
      end: 'complete',
      outputTokens: 9,
    });
    expect(json('{"type":"message","content":[]}').end).toBe('empty');
  });

  it('reads keys with spaces around their colons, tool calls and Responses output', () => {
    expect(json('{ "choices" : [ { "message" : { "content" : null, "tool_calls" : [ {"id":"t"} ] } } ] }').end).toBe(
      'complete',
    );
    expect(json('{"choices":[{"message":{"content":null,"tool_calls":[]}}]}').end).toBe('empty');
    expect(json('{"usage" : { "completion_tokens" : 7 , "total_tokens": 9 }}')).toEqual({
      end: 'complete',
      outputTokens: 7,
    });
    expect(json('{"output":[{"type":"message","content":[{"type":"output_text","text":"ok"}]}]}').end).toBe('complete');
    // A key's name as a string value is no key; an error key deep in the answer is no top-level error.
    expect(json('{"choices":[{"message":{"role":"assistant","content":"error"}}],"x":{"error":1}}').end).toBe(
      'complete',
    );
  });

  it('judges completions only: a model list or an embedding is not an answer', () => {
    const answer = (body: string) => {
      const s = new JsonAnswerScanner();
      s.feed(Buffer.from(body), 1);
      s.finish('upstream_end');
      return s.answer;
    };
    expect(answer('{"object":"list","data":[{"id":"m","object":"model"}]}')).toBe(false);
    expect(
      answer('{"object":"list","data":[{"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":3,"total_tokens":3}}'),
    ).toBe(false);
    expect(answer('{"choices":[{"message":{"role":"assistant","content":""}}]}')).toBe(true);
    expect(answer('{"type":"message","role":"assistant","content":[]}')).toBe(true);
    expect(answer('{"error":{"message":"x"}}')).toBe(true);
  });

  it('finds usage at the end of an answer far larger than what it keeps', () => {
    const big = `{"choices":[{"message":{"content":"${'y'.repeat(1_000_000)}"}}],"usage":{"completion_tokens":123}}`;
    expect(json(big)).toEqual({ end: 'complete', outputTokens: 123 });
  });

  it('scans 2xx event streams and JSON only', () => {
    expect(scannerFor('auto', '/v1/chat/completions', 200, 'text/event-stream; charset=utf-8')).toBeInstanceOf(
      SseScanner,
    );
    expect(scannerFor('auto', '/v1/chat/completions', 200, 'application/json')).toBeInstanceOf(JsonAnswerScanner);
    expect(scannerFor('auto', '/x', 200, 'application/problem+json')).toBeInstanceOf(JsonAnswerScanner);
    expect(scannerFor('auto', '/x', 500, 'text/event-stream')).toBeUndefined();
    expect(scannerFor('auto', '/x', 200, 'application/octet-stream')).toBeUndefined();
    expect(scannerFor('auto', '/x', 200, undefined)).toBeUndefined();
  });
});
