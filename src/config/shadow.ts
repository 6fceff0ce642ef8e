// rollout.shadow as the config file writes it, with its defaults (off, 64 copies, 1 MiB, 60 s, POST /v1/*).

import type { ShadowConfig } from './types.js';
import { parseDuration, parseSize } from './units.js';

// biome-ignore lint/suspicious/noExplicitAny: raw config is validated by the schema before it is read
type Raw = any;

const dur = (value: unknown, fallback: number): number => (value === undefined ? fallback : parseDuration(value)!);

export function shadowConfig(raw: Raw | undefined): ShadowConfig {
  const shadow = raw ?? {};
  return {
    percentBp: Math.round((shadow.percent ?? 0) * 100),
    maxInflight: shadow.max_inflight ?? 64,
    maxBodyBytes: shadow.max_body === undefined ? 1024 * 1024 : parseSize(shadow.max_body)!,
    timeoutMs: dur(shadow.timeout, 60_000),
    methods: (shadow.methods ?? ['POST']).map((m: string) => m.toUpperCase()),
    paths: shadow.paths ?? ['/v1/*'],
    onBreach: shadow.on_breach ?? 'rollback',
  };
}
