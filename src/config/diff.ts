// What a reload changes: the dotted paths of every config field that differs, secrets named but never shown.

import type { Config } from './types.js';

/** Fields a running veer cannot take over without a restart (the reload reports them instead). */
const RESTART_ONLY = ['listen.', 'admin.enabled', 'admin.host', 'admin.port', 'state.', 'fleet.', 'drain.'];

function flatten(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  out.set(prefix, JSON.stringify(value) ?? 'undefined');
}

const snake = (path: string) => path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Dotted snake_case paths that differ; tokens compare as a whole (`admin.tokens`), arrays as values. */
export function changedFields(a: Config, b: Config): string[] {
  const fa = new Map<string, string>();
  const fb = new Map<string, string>();
  const strip = (c: Config) => ({ ...c, sourcePath: undefined });
  flatten(strip(a), '', fa);
  flatten(strip(b), '', fb);
  const out = new Set<string>();
  for (const k of new Set([...fa.keys(), ...fb.keys()])) {
    if (fa.get(k) !== fb.get(k)) out.add(snake(k.startsWith('admin.tokens') ? 'admin.tokens' : k));
  }
  return [...out].sort();
}

export function needsRestart(path: string): boolean {
  return RESTART_ONLY.some((p) => (p.endsWith('.') ? path.startsWith(p) : path === p));
}
