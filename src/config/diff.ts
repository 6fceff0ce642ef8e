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

/** Loaded fields whose names differ from the file's by more than a unit suffix. */
const FILE_NAMES: Record<string, string> = {
  'rollout.weight_bp': 'rollout.weight',
  'rollout.steps_bp': 'rollout.steps',
  'rollout.step_plans': 'rollout.steps',
  'slo.flap_max_flips': 'slo.flap.max_flips',
  'slo.flap_period_ms': 'slo.flap.period',
  'rollout.shadow.percent_bp': 'rollout.shadow.percent',
  'rollout.shadow.max_body_bytes': 'rollout.shadow.max_body',
};

/** The path an operator wrote in the file: durations are loaded as `<name>_ms`, weights as `<name>_bp`. */
function filePath(loaded: string): string {
  const path = snake(loaded.startsWith('admin.tokens') ? 'admin.tokens' : loaded);
  return FILE_NAMES[path] ?? path.replace(/_ms$/, '');
}

/**
 * The config file's dotted paths of the fields that differ (`slo.window`, `rollout.weight`); tokens compare
 * as a whole (`admin.tokens`), arrays as values.
 */
export function changedFields(a: Config, b: Config): string[] {
  const fa = new Map<string, string>();
  const fb = new Map<string, string>();
  const strip = (c: Config) => ({ ...c, sourcePath: undefined });
  flatten(strip(a), '', fa);
  flatten(strip(b), '', fb);
  const out = new Set<string>();
  for (const k of new Set([...fa.keys(), ...fb.keys()])) {
    if (fa.get(k) !== fb.get(k)) out.add(filePath(k));
  }
  return [...out].sort();
}

export function needsRestart(path: string): boolean {
  return RESTART_ONLY.some((p) => (p.endsWith('.') ? path.startsWith(p) : path === p));
}
