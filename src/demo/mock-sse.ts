// The mock upstream's answer formats: OpenAI chat/completions, OpenAI Responses and Anthropic Messages events and JSON bodies.

import { performance } from 'node:perf_hooks';

export type AnswerFormat = 'chat' | 'completions' | 'responses' | 'anthropic';

/** The format a request path asks for; undefined for a path the mock does not serve as an answer. */
export function answerFormat(path: string): AnswerFormat | undefined {
  if (path === '/v1/chat/completions') return 'chat';
  if (path === '/v1/completions') return 'completions';
  if (path === '/v1/responses') return 'responses';
  if (path === '/v1/messages') return 'anthropic';
  return undefined;
}

/** Wall-clock ms with sub-ms precision: the `t` stamp a bench client compares its arrival times against. */
const now = () => performance.timeOrigin + performance.now();

/** What one stream writes, event by event, in its format. */
export interface StreamWriter {
  /** Events before the first token (role chunk, message_start, response.created). */
  opening(): string;
  token(i: number): string;
  /** The terminal event(s), with usage when asked for. */
  closing(tokens: number, usage: boolean): string;
  /** An error inside the 200 stream, as the format's servers send one. */
  inbandError(): string;
}

const sse = (data: unknown, event?: string) =>
  `${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

function openaiWriter(name: string, chat: boolean): StreamWriter {
  const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const t = now();
    return sse({
      id: `cmpl-${name}`,
      object: chat ? 'chat.completion.chunk' : 'text_completion',
      created: Math.floor(t / 1000),
      model: `mock-${name}`,
      choices: [{ index: 0, ...choice }],
      ...extra,
      t,
    });
  };
  return {
    opening: () => '',
    token: (i) =>
      chat
        ? chunk({ delta: { content: `tok${i} ` }, finish_reason: null })
        : chunk({ text: `tok${i} `, finish_reason: null }),
    closing(tokens, usage) {
      let out = chat ? chunk({ delta: {}, finish_reason: 'stop' }) : chunk({ text: '', finish_reason: 'stop' });
      if (usage) {
        out += sse({
          id: `cmpl-${name}`,
          object: chat ? 'chat.completion.chunk' : 'text_completion',
          model: `mock-${name}`,
          choices: [],
          usage: { prompt_tokens: 1, completion_tokens: tokens, total_tokens: tokens + 1 },
        });
      }
      return `${out}data: [DONE]\n\n`;
    },
    inbandError: () =>
      `${sse({ error: { object: 'error', message: 'mock in-band failure', type: 'InternalServerError', code: 500 } })}data: [DONE]\n\n`,
  };
}

function responsesWriter(name: string): StreamWriter {
  let seq = 0;
  const ev = (type: string, body: Record<string, unknown>) =>
    sse({ type, sequence_number: seq++, ...body, t: now() }, type);
  const response = (status: string, extra: Record<string, unknown> = {}) => ({
    id: `resp_${name}`,
    object: 'response',
    model: `mock-${name}`,
    status,
    error: null,
    ...extra,
  });
  return {
    opening: () => ev('response.created', { response: response('in_progress', { output: [], usage: null }) }),
    token: (i) =>
      ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: `tok${i} ` }),
    closing: (tokens) =>
      ev('response.completed', {
        response: response('completed', {
          usage: { input_tokens: 1, output_tokens: tokens, total_tokens: tokens + 1 },
        }),
      }),
    inbandError: () =>
      ev('response.failed', {
        response: response('failed', { error: { code: 'server_error', message: 'mock in-band failure' } }),
      }),
  };
}

function anthropicWriter(name: string): StreamWriter {
  const ev = (type: string, body: Record<string, unknown>) => sse({ type, ...body, t: now() }, type);
  return {
    opening: () =>
      ev('message_start', {
        message: {
          id: `msg_${name}`,
          type: 'message',
          role: 'assistant',
          content: [],
          model: `mock-${name}`,
          usage: { input_tokens: 1, output_tokens: 1 },
        },
      }) + ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    token: (i) => ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: `tok${i} ` } }),
    closing: (tokens) =>
      ev('content_block_stop', { index: 0 }) +
      ev('message_delta', {
        delta: { stop_reason: 'end_turn', stop_sequence: null },
        usage: { output_tokens: tokens },
      }) +
      ev('message_stop', {}),
    inbandError: () => ev('error', { error: { type: 'overloaded_error', message: 'mock in-band failure' } }),
  };
}

export function streamWriter(format: AnswerFormat, name: string): StreamWriter {
  if (format === 'responses') return responsesWriter(name);
  if (format === 'anthropic') return anthropicWriter(name);
  return openaiWriter(name, format === 'chat');
}

/** A non-streaming answer of `tokens` tokens (0: an empty answer) in the format. */
export function completionBody(format: AnswerFormat, name: string, tokens: number): string {
  const text = Array.from({ length: tokens }, (_, i) => `tok${i}`).join(' ');
  if (format === 'anthropic') {
    return JSON.stringify({
      id: `msg_${name}`,
      type: 'message',
      role: 'assistant',
      model: `mock-${name}`,
      content: tokens > 0 ? [{ type: 'text', text }] : [],
      stop_reason: 'end_turn',
      usage: { input_tokens: 1, output_tokens: tokens },
    });
  }
  if (format === 'responses') {
    return JSON.stringify({
      id: `resp_${name}`,
      object: 'response',
      status: 'completed',
      output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] }],
      usage: { input_tokens: 1, output_tokens: tokens, total_tokens: tokens + 1 },
    });
  }
  const chat = format === 'chat';
  return JSON.stringify({
    id: `cmpl-${name}`,
    object: chat ? 'chat.completion' : 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: `mock-${name}`,
    choices: [
      chat
        ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }
        : { index: 0, text, finish_reason: 'stop' },
    ],
    usage: { prompt_tokens: 1, completion_tokens: tokens, total_tokens: tokens + 1 },
  });
}

/** A 200 JSON answer that is an error (some servers answer so after they accepted the request). */
export function errorBody(): string {
  return JSON.stringify({ error: { message: 'mock in-band failure', type: 'server_error', code: 500 } });
}
