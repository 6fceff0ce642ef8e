// The human-readable text the operator CLI prints for each admin API reply (`--json` prints the reply itself).

import type {
  Audit,
  AuditEntry,
  FleetStatus,
  Overrides,
  ReloadReply,
  Rollout,
  SegmentStatus,
  ShadowStatus,
  Status,
} from '../admin/api-types.js';
import { printable } from './printable.js';

/** Aligned columns; every cell is made printable first, so a reason cannot forge a row or move the cursor. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows].map((row) => row.map(printable));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const dash = '-';
const ms = (v: number | null | undefined) => (v === null || v === undefined ? dash : `${v.toFixed(1)} ms`);
const percent = (ratio: number | null | undefined) =>
  ratio === null || ratio === undefined ? dash : `${(ratio * 100).toFixed(2)}%`;
const plain = (v: number | null | undefined) =>
  v === null || v === undefined ? dash : String(Number(v.toPrecision(6)));
const perSecond = (v: number | null | undefined) => (v === null || v === undefined ? dash : `${v.toFixed(1)}/s`);
/** A rule's value in its unit: a ratio as a percentage, latency in ms, a decode rate per second, a query's value as it came. */
const ruleValue = (v: number | null | undefined, unit: string | undefined) =>
  unit === 'ratio' ? percent(v) : unit === 'value' ? plain(v) : unit === 'per_s' ? perSecond(v) : ms(v);

function duration(msValue: number | undefined): string {
  if (msValue === undefined) return '?';
  if (msValue % 60_000 === 0) return `${msValue / 60_000}m`;
  if (msValue % 1000 === 0) return `${msValue / 1000}s`;
  return `${msValue}ms`;
}

/** The rollout block every state-changing command prints, and the head of `veer status`. */
export function rolloutView(r: Rollout): string {
  const lines: [string, string][] = [
    ['rollout', r.id],
    ['state', r.state + (r.state === 'killed' && r.kill_reason ? ` (${r.kill_reason})` : '')],
    ['weight', `${r.weight_percent}% of keyed traffic on new`],
    [
      'step',
      r.steps.length === 0
        ? 'no steps configured'
        : `${r.step === null ? 'not on a step' : `${r.step + 1} of ${r.steps.length}`} (steps ${r.steps.map((s) => `${s}%`).join(', ')})`,
    ],
    ['latch', r.latched ? 'LATCHED: flapping; holds on legacy until `veer resume`' : 'off'],
  ];
  if (r.gate) {
    const manual = r.gate.manual ? ' (manual gate: then `veer promote`)' : '';
    lines.push([
      'next',
      r.gate.waiting_for_approval
        ? `${r.gate.next_percent}%, waiting for approval (\`veer promote\`)`
        : `${r.gate.next_percent}%${r.gate.eligible_at ? `, eligible at ${r.gate.eligible_at} if every rule keeps passing` : ', once every rule passes at this step'}${manual}`,
    ]);
  }
  if (r.stalled) {
    lines.push([
      'stalled',
      `STALLED: inconclusive since ${r.stalled.since} (limit ${duration(r.stalled.limit_ms)}); on_inconclusive ${r.stalled.on_inconclusive}`,
    ]);
  }
  const c = r.last_change;
  lines.push(['last change', c ? `${c.time}  ${c.action} by ${c.actor}: ${c.reason}` : 'none yet']);
  return pairs(lines);
}

/** `key  value` lines with the values aligned. */
function pairs(lines: [string, string][]): string {
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${printable(v)}\n`).join('');
}

export function statusView(s: Status): string {
  const up = (name: 'legacy' | 'new') => {
    const u = s.upstreams[name] ?? {};
    return [
      name,
      ms(u.ttfb_p50_ms),
      ms(u.ttfb_p95_ms),
      ms(u.ttfb_p99_ms),
      percent(u.error_rate),
      String(u.samples ?? 0),
      String(u.inflight ?? 0),
      // Requests waiting for a connection to this upstream (its max_sockets all busy).
      String(u.pending ?? 0),
      u.url ?? '',
    ];
  };
  const rules = (s.slo.rules ?? []).map((r) => [
    r.text ?? r.name ?? '?',
    ruleValue(r.value, r.unit),
    ruleValue(r.threshold, r.unit) +
      (r.legacy !== null && r.legacy !== undefined ? ` (legacy ${ruleValue(r.legacy, r.unit)})` : ''),
    `${r.samples ?? 0}/${r.min_samples ?? 0}`,
    (r.status ?? '?').toUpperCase(),
  ]);
  const overrides = s.overrides;
  return [
    rolloutView(s.rollout) + (s.fleet ? fleetView(s.fleet) : ''),
    `window TTFB over the last ${duration(s.slo.window_ms)}:`,
    table(
      ['upstream', 'p50', 'p95', 'p99', 'errors', 'samples', 'in-flight', 'waiting', 'url'],
      [up('legacy'), up('new')],
    ),
    '',
    printable(`SLO rules (on breach: ${s.slo.on_breach ?? '?'}; evaluated ${s.slo.evaluated_at ?? 'not yet'}):`),
    rules.length > 0
      ? table(['rule', 'value', 'threshold', 'samples/min', 'result'], rules)
      : '(no rules configured: nothing guards this rollout)',
    '',
    overrides ? overridesView(overrides).trimEnd() : '',
    s.shadow ? `\n${shadowView(s.shadow).trimEnd()}` : '',
    s.segments && s.segments.length > 0 ? `\n${segmentsView(s.segments).trimEnd()}` : '',
    '',
  ].join('\n');
}

/** The shadow line block (`veer shadow`, `veer status`). */
export function shadowView(s: ShadowStatus): string {
  const w = s.window;
  const lines: [string, string][] = [
    [
      'shadow',
      s.percent === 0
        ? `off${s.set_percent > 0 ? ` (set to ${s.set_percent}%, not in force in this state)` : ''}`
        : `${s.percent}% of legacy-bound users mirrored to new (${s.methods.join(',')} ${s.paths.join(' ')})`,
    ],
    [
      'copies',
      `${s.inflight} open of ${s.max_inflight}; body up to ${s.max_body_bytes} bytes; timeout ${duration(s.timeout_ms)}`,
    ],
    [
      'window',
      `${w.requests} copies, p95 ${ms(w.ttfb_p95_ms)}, errors ${percent(w.error_rate)}; on breach: ${s.on_breach}`,
    ],
  ];
  for (const r of s.rules) lines.push([`  ${r.text}`, `${ruleValue(r.value, r.unit)} ${r.status.toUpperCase()}`]);
  if (s.eligible_at) lines.push(['first step', `at ${s.eligible_at} if every rule keeps passing on the shadow`]);
  return pairs(lines);
}

function segmentsView(segments: SegmentStatus[]): string {
  if (segments.length === 0) return '';
  const rows = segments.map((g) => [
    g.name,
    g.side ?? `${g.weight_percent}% on new`,
    String(g.requests.new),
    String(g.requests.legacy),
  ]);
  return `segments (first match wins):\n${table(['segment', 'routes to', 'new', 'legacy'], rows)}\n`;
}

/** Fleet mode: this sidecar's link to the store, the judge, and what it has not shared yet. */
export function fleetView(f: FleetStatus): string {
  const link =
    f.state === 'awaiting_fleet'
      ? 'AWAITING FIRST SYNC: serving legacy only until the fleet store answers'
      : f.connected
        ? 'connected'
        : 'DISCONNECTED: serving the last known state; changes toward new are refused';
  return pairs([
    ['fleet', link],
    ['leader', f.leader === null ? 'unknown' : f.is_leader ? `${f.leader} (this sidecar)` : f.leader],
    ['fleet version', f.version === null ? 'none yet' : `v${f.version}, last sync ${f.last_sync ?? 'never'}`],
    ['pending', f.pending_changes === 0 ? 'nothing' : `${f.pending_changes} local change(s) not yet in the store`],
  ]);
}

export function overridesView(o: Overrides): string {
  const list = (keys: string[]) => (keys.length === 0 ? '(none)' : keys.map(printable).join(', '));
  return `overrides pinned to new:    ${list(o.new)}\noverrides pinned to legacy: ${list(o.legacy)}\n`;
}

export function auditView(a: Audit): string {
  if (a.entries.length === 0) return '(the audit log is empty)\n';
  const side = (x: AuditEntry['before'] | undefined) => (x ? `${x.state} ${x.weight_percent}%` : dash);
  const rows = a.entries.map((e) => [
    e.time,
    e.actor,
    e.action,
    side(e.before) === side(e.after) ? dash : `${side(e.before)} -> ${side(e.after)}`,
    e.reason,
  ]);
  return `${table(['time', 'actor', 'action', 'change', 'reason'], rows)}\n`;
}

export function reloadView(r: ReloadReply): string {
  const list = (x: string[]) => (x.length === 0 ? '(none)' : x.map(printable).join(', '));
  return (
    `config reloaded (rollout ${printable(r.rollout_id)})\n` +
    `changed:          ${list(r.changed)}\n` +
    `restart required: ${list(r.restart_required)}\n`
  );
}
