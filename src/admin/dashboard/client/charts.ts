// The live charts (latency, errors, requests per second, share on new, and the token panel's), drawn with uPlot from /api/series points.

import uPlot from 'uplot';
import type { SeriesPoint } from '../../api-types.js';
import { LEGACY, type Line, limitLine, NEW, pct, ruleAt as rule, type Spec } from './chart-spec.js';
import { isTokenMetric, tokenSpecs } from './token-charts.js';

const WEIGHT = '#4b5563';
const HEIGHT = 220;

const LATENCY_METRICS: Record<string, keyof SeriesPoint['new']> = {
  ttfb_p50: 'ttfb_p50_ms',
  ttfb_p95: 'ttfb_p95_ms',
  ttfb_p99: 'ttfb_p99_ms',
};

/** The lines of each chart for the rules in force at the latest point (a reload may change them). */
function specs(latest: SeriesPoint | undefined, texts: ReadonlyMap<string, string>): Spec[] {
  const rules = latest?.rules ?? [];
  const quantiles = (side: 'legacy' | 'new', color: string): Line[] => [
    { label: `${side} p50`, stroke: color, width: 1, get: (p) => p[side].ttfb_p50_ms },
    { label: `${side} p95`, stroke: color, width: 2.5, get: (p) => p[side].ttfb_p95_ms },
    { label: `${side} p99`, stroke: color, width: 1.5, dash: [2, 3], get: (p) => p[side].ttfb_p99_ms },
  ];
  // Query rules carry their own units (a cache fill, a queue length): the rule table shows them, not these charts.
  // Token rules have their own panel (token-charts.ts).
  const latencyRules = rules.filter(
    (r) => r.metric !== 'error_rate' && r.metric !== 'query' && !isTokenMetric(r.metric),
  );
  const errorRules = rules.filter((r) => r.metric === 'error_rate');
  const limit = limitLine;
  return [
    {
      id: 'chart-latency',
      unit: 'ms',
      digits: 0,
      lines: [
        ...quantiles('legacy', LEGACY),
        ...quantiles('new', NEW),
        // A rule on a quantile not drawn above (p90, duration p95) brings its own value line.
        ...latencyRules
          .filter((r) => !(r.metric in LATENCY_METRICS))
          .map((r) => ({
            label: `new ${r.metric}`,
            stroke: '#7c2d12',
            width: 1.5,
            get: (p: SeriesPoint) => rule(p, r.name)?.value ?? null,
          })),
        ...latencyRules.map((r) => limit(r.name, texts.get(r.name) ?? r.name, (x) => x)),
      ],
    },
    {
      id: 'chart-errors',
      unit: '%',
      digits: 2,
      lines: [
        { label: 'legacy', stroke: LEGACY, width: 2, get: (p) => pct(p.legacy.error_rate) },
        { label: 'new', stroke: NEW, width: 2, get: (p) => pct(p.new.error_rate) },
        ...errorRules.map((r) => limit(r.name, texts.get(r.name) ?? r.name, pct)),
      ],
    },
    {
      id: 'chart-rps',
      unit: 'req/s',
      digits: 1,
      lines: [
        { label: 'legacy', stroke: LEGACY, width: 2, get: (p) => p.legacy.rps },
        { label: 'new', stroke: NEW, width: 2, get: (p) => p.new.rps },
      ],
    },
    {
      id: 'chart-share',
      unit: '%',
      digits: 1,
      range: [0, 100],
      lines: [
        { label: 'share on new', stroke: NEW, width: 2, get: (p) => pct(p.share_new) },
        { label: 'weight', stroke: WEIGHT, width: 2, dash: [6, 4], stepped: true, get: (p) => p.weight_percent },
      ],
    },
    ...tokenSpecs(latest, texts),
  ];
}

interface Drawn {
  key: string;
  plot: uPlot;
  spec: Spec;
  summary: HTMLElement;
}

const fmt = (v: number | null | undefined, digits: number, unit: string) =>
  v === null || v === undefined ? '–' : `${v.toFixed(digits)} ${unit}`;

export class Charts {
  private drawn = new Map<string, Drawn>();

  constructor() {
    const observer = new ResizeObserver(() => this.resize());
    for (const d of specs(undefined, new Map())) {
      const el = document.getElementById(d.id);
      if (el) observer.observe(el);
    }
  }

  private resize(): void {
    for (const d of this.drawn.values()) {
      const el = document.getElementById(d.spec.id)!;
      d.plot.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT });
    }
  }

  /** `texts` maps rule names to their text, for the limit lines' labels. */
  update(points: readonly SeriesPoint[], texts: ReadonlyMap<string, string>): void {
    const latest = points[points.length - 1];
    for (const spec of specs(latest, texts)) {
      const el = document.getElementById(spec.id);
      if (!el) continue;
      const data: uPlot.AlignedData = [
        points.map((p) => p.t / 1000),
        ...spec.lines.map((line) => points.map((p) => line.get(p))),
      ];
      const key = spec.lines.map((l) => l.label).join('|');
      let d = this.drawn.get(spec.id);
      if (!d || d.key !== key) {
        d?.plot.destroy();
        d = { key, spec, plot: this.create(el, spec, data), summary: this.summaryOf(el) };
        this.drawn.set(spec.id, d);
      } else {
        d.plot.setData(data);
      }
      // Unless someone is hovering over the chart, its legend shows the latest values.
      if (points.length > 0 && d.plot.cursor.left !== undefined && d.plot.cursor.left < 0) {
        d.plot.setLegend({ idx: points.length - 1 });
      }
      el.dataset.points = String(points.length);
      // What a screen reader hears instead of the picture: the latest value of every line.
      d.summary.textContent = latest
        ? `Latest: ${spec.lines.map((l) => `${l.label} ${fmt(l.get(latest), spec.digits, spec.unit)}`).join(', ')}.`
        : 'No data yet.';
    }
  }

  private summaryOf(el: HTMLElement): HTMLElement {
    const id = `${el.id}-summary`;
    let p = document.getElementById(id);
    if (!p) {
      p = document.createElement('p');
      p.id = id;
      p.className = 'sr-only';
      el.after(p);
      el.setAttribute('aria-describedby', id);
    }
    return p;
  }

  private create(el: HTMLElement, spec: Spec, data: uPlot.AlignedData): uPlot {
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: HEIGHT,
      scales: {
        x: { time: true },
        y: spec.range ? { range: spec.range } : { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [{}, { size: 56, values: (_u, ticks) => ticks.map((t) => `${t}`), label: spec.unit, labelSize: 18 }],
      series: [
        {},
        ...spec.lines.map(
          (l): uPlot.Series => ({
            label: l.label,
            stroke: l.stroke,
            width: l.width ?? 2,
            dash: l.dash,
            spanGaps: false,
            paths: l.stepped ? uPlot.paths.stepped!({ align: 1 }) : undefined,
            value: (_u, v) => fmt(v, spec.digits, spec.unit),
          }),
        ),
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    return new uPlot(opts, data, el);
  }
}
