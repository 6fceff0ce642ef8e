// Test fixture: a strict reader of the Prometheus text exposition format (0.0.4), so tests read /metrics as a scraper would and fail on any malformed line.

export type MetricKind = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The series name as written (e.g. veer_ttfb_seconds_bucket). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: MetricKind;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const KINDS = new Set<MetricKind>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function fail(lineNo: number, line: string, why: string): never {
  throw new Error(`metrics text line ${lineNo}: ${why}\n  ${line}`);
}

/** Values are read as Go's strconv.ParseFloat reads them (Prometheus' rule): NaN and Inf in any case. */
function parseValue(text: string, lineNo: number, line: string): number {
  const special = text.toLowerCase();
  if (special === '+inf' || special === 'inf' || special === '+infinity' || special === 'infinity') {
    return Number.POSITIVE_INFINITY;
  }
  if (special === '-inf' || special === '-infinity') return Number.NEGATIVE_INFINITY;
  if (special === 'nan') return Number.NaN; // prom-client writes "Nan"
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) fail(lineNo, line, `bad value "${text}"`);
  return Number(text);
}

/** Parses `{a="x",b="y"}` starting at `at` (the brace); returns the labels and the index after `}`. */
function parseLabels(line: string, at: number, lineNo: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1;
  while (line[i] !== '}') {
    const eq = line.indexOf('=', i);
    if (eq < 0) fail(lineNo, line, 'label without "="');
    const name = line.slice(i, eq);
    if (!LABEL_NAME.test(name)) fail(lineNo, line, `bad label name "${name}"`);
    if (name in labels) fail(lineNo, line, `duplicate label "${name}"`);
    if (line[eq + 1] !== '"') fail(lineNo, line, 'label value not quoted');
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = line[j];
      if (c === undefined) fail(lineNo, line, 'unterminated label value');
      if (c === '"') break;
      if (c === '\\') {
        const e = line[j + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else fail(lineNo, line, `bad escape "\\${e}" in label value`);
        j += 2;
      } else {
        value += c;
        j++;
      }
    }
    labels[name] = value;
    i = j + 1;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') fail(lineNo, line, 'expected "," or "}" after a label');
  }
  return { labels, end: i + 1 };
}

function seriesKey(name: string, labels: Record<string, string>): string {
  return `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')}}`;
}

/** The family a series name belongs to, given the family being read (histogram/summary suffixes). */
function belongs(series: string, family: Family): boolean {
  if (series === family.name) return family.type !== 'histogram';
  if (family.type === 'histogram') return [`_bucket`, `_sum`, `_count`].some((s) => series === family.name + s);
  if (family.type === 'summary') return series === `${family.name}_sum` || series === `${family.name}_count`;
  return false;
}

/**
 * Reads a whole exposition: every family has one HELP and one TYPE before its samples, its samples are
 * contiguous and named for it, no series repeats, counters are >= 0, and every histogram's buckets are
 * cumulative with a +Inf bucket equal to its _count. Throws on the first violation.
 */
export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('metrics text does not end with a newline');
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, idx) => {
    const lineNo = idx + 1;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, keyword, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string];
      if (!METRIC_NAME.test(name)) fail(lineNo, line, `bad metric name "${name}"`);
      let family = families.get(name);
      if (family && family !== current) fail(lineNo, line, `family ${name} appears twice`);
      if (!family) {
        family = { name, help: '', type: 'untyped', samples: [] };
        families.set(name, family);
        current = family;
      }
      if (keyword === 'HELP') {
        if (family.help) fail(lineNo, line, 'second HELP');
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) fail(lineNo, line, 'bad escape in HELP');
        family.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        if (family.samples.length > 0) fail(lineNo, line, 'TYPE after samples');
        if (!KINDS.has(rest as MetricKind)) fail(lineNo, line, `unknown type "${rest}"`);
        family.type = rest as MetricKind;
      }
      return;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) fail(lineNo, line, 'no metric name');
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) fail(lineNo, line, `bad metric name "${name}"`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i, lineNo));
    if (line[i] !== ' ') fail(lineNo, line, 'expected a space before the value');
    const parts = line.slice(i + 1).split(' ');
    if (parts.length > 2) fail(lineNo, line, 'trailing text after value and timestamp');
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) fail(lineNo, line, 'bad timestamp');
    const value = parseValue(parts[0]!, lineNo, line);
    if (!current || !belongs(name, current)) fail(lineNo, line, `sample ${name} outside its family's block`);
    if (!current.help) fail(lineNo, line, `family ${current.name} has no HELP`);
    if (current.type === 'untyped') fail(lineNo, line, `family ${current.name} has no TYPE`);
    const key = seriesKey(name, labels);
    if (seen.has(key)) fail(lineNo, line, `duplicate series ${key}`);
    seen.add(key);
    if (current.type === 'counter' && !(value >= 0)) fail(lineNo, line, 'negative or NaN counter');
    if (current.type === 'histogram' && name.endsWith('_bucket') && labels.le === undefined) {
      fail(lineNo, line, 'histogram bucket without le');
    }
    if (current.type === 'summary' && name === current.name && labels.quantile === undefined) {
      fail(lineNo, line, 'summary sample without quantile');
    }
    current.samples.push({ name, labels, value });
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = seriesKey('', rest);
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name.endsWith('_bucket')) g.buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), s.value]);
    else if (s.name.endsWith('_count')) g.count = s.value;
  }
  for (const [key, g] of groups) {
    const where = `${family.name}${key}`;
    for (let i = 1; i < g.buckets.length; i++) {
      const [le, n] = g.buckets[i]!;
      const [prevLe, prevN] = g.buckets[i - 1]!;
      if (!(le > prevLe)) throw new Error(`${where}: buckets not in ascending le order`);
      if (n < prevN) throw new Error(`${where}: bucket counts not cumulative`);
    }
    const last = g.buckets.at(-1);
    if (!last || last[0] !== Number.POSITIVE_INFINITY) throw new Error(`${where}: no +Inf bucket`);
    if (g.count !== last[1]) throw new Error(`${where}: _count ${g.count} differs from the +Inf bucket ${last[1]}`);
  }
}

/**
 * The value of the one series named `name` whose labels include `labels`; 0 when there is none (a
 * labelled counter that was never incremented is absent); throws when several match.
 */
export function seriesValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const matches = samplesOf(families, name, labels);
  if (matches.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${matches.length} series`);
  return matches[0]?.value ?? 0;
}

/** Every series named `name` whose labels include `labels`. */
export function samplesOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): Sample[] {
  const out: Sample[] = [];
  for (const family of families.values()) {
    for (const s of family.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) out.push(s);
    }
  }
  return out;
}
