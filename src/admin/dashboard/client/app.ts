// The dashboard's entry point: polls status, series and audit about once a second and hands them to the panels.

import 'uplot/dist/uPlot.min.css';
import '../style.css';
import type { AuditEntry, Series, SeriesPoint, Status } from '../../api-types.js';
import { setupActions } from './actions.js';
import { ApiError, api } from './api.js';
import { Charts } from './charts.js';
import { onCommandDone } from './command.js';
import { setupConfirm } from './confirm.js';
import { renderOverrides, setupOverrides } from './overrides.js';
import { inRange, RANGES, setupRange } from './range.js';
import { renderShadowPanel } from './shadow-panel.js';
import { renderUpstreams } from './upstreams.js';
import { renderAudit, renderHeader, renderRules } from './view.js';

const POLL_MS = 1000;
/** Refused attempts do not bump the rollout version, so the audit is re-read this often anyway. */
const AUDIT_MS = 5000;

/**
 * The panels drawn from each /api/status answer, one small function each; a new panel (shadow, segments,
 * fleet members) is one more entry here and its own file. `skewMs` is the server's clock minus this browser's.
 */
const PANELS: ((status: Status, skewMs: number) => void)[] = [
  renderHeader,
  renderUpstreams,
  renderRules,
  renderOverrides,
  renderShadowPanel,
];

const charts = new Charts();
const points: SeriesPoint[] = [];
let capacity = 3600;
let rangeSeconds: number = RANGES[0].seconds;
let texts = new Map<string, string>();
let lastVersion = -1;
let lastAuditAt = 0;
let timer: number | undefined;
let busy = false;

function connection(text: string, ok: boolean): void {
  const el = document.getElementById('conn')!;
  el.dataset.ok = String(ok);
  el.textContent = text;
}

function drawCharts(): void {
  const shown = inRange(points, rangeSeconds);
  charts.update(shown, texts);
  const range = RANGES.find((r) => r.seconds === rangeSeconds)?.label ?? `${rangeSeconds} s`;
  const grid = document.getElementById('chart-grid')!;
  grid.dataset.range = String(rangeSeconds);
  grid.dataset.points = String(shown.length);
  document.getElementById('range-note')!.textContent =
    shown.length > 0 && shown.length < rangeSeconds
      ? `last ${range} (veer has sampled ${Math.round((shown[shown.length - 1]!.t - shown[0]!.t) / 1000)} s so far)`
      : `last ${range}`;
}

async function tick(): Promise<void> {
  if (busy) return;
  busy = true;
  clearTimeout(timer);
  try {
    const since = points.length > 0 ? `?since=${points[points.length - 1]!.t}` : '';
    const [status, series] = await Promise.all([
      api<Status>('GET', '/api/status'),
      api<Series>('GET', `/api/series${since}`),
    ]);
    const skew = Date.parse(status.time) - Date.now();
    for (const panel of PANELS) panel(status, skew);
    capacity = series.capacity;
    points.push(...series.points);
    if (points.length > capacity) points.splice(0, points.length - capacity);
    texts = new Map(status.slo.rules.map((r) => [r.name, r.text]));
    drawCharts();
    document.getElementById('window-note')!.textContent =
      `(one point a second; latency and errors over the sliding ${status.slo.window_ms / 1000} s window)`;
    if (status.rollout.version !== lastVersion || Date.now() - lastAuditAt > AUDIT_MS) {
      const audit = await api<{ entries: AuditEntry[] }>('GET', '/api/audit?limit=15');
      renderAudit(audit.entries);
      lastVersion = status.rollout.version;
      lastAuditAt = Date.now();
    }
    connection(`live · veer ${status.version} · updated ${new Date().toLocaleTimeString()}`, true);
  } catch (err) {
    connection(
      err instanceof ApiError && err.status === 401
        ? `cannot read: ${err.message} (this veer requires a token to read; enter it under Actions)`
        : `cannot reach veer: ${(err as Error).message}; retrying`,
      false,
    );
  } finally {
    busy = false;
    timer = window.setTimeout(() => void tick(), POLL_MS);
  }
}

setupConfirm();
setupActions();
setupOverrides();
rangeSeconds = setupRange((seconds) => {
  rangeSeconds = seconds;
  drawCharts();
});
onCommandDone(() => void tick());
void tick();
