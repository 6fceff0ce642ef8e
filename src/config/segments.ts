// routing.segments as the config file writes them, checked and built (a regex compiled here, once).

import type { SegmentConfig, SegmentSource, SegmentTest } from './types.js';

// biome-ignore lint/suspicious/noExplicitAny: raw config is validated by the schema before it is read
type Raw = any;

const SEGMENT_SOURCES = ['header', 'cookie', 'query'] as const;
const SEGMENT_TESTS = ['equals', 'in', 'prefix', 'regex'] as const;

/** routing.segments: one source, one test and either a side or a weight each; a regex compiled here, once. */
export function segmentConfigs(raw: Raw[] | undefined, problems: string[]): SegmentConfig[] {
  const out: SegmentConfig[] = [];
  (raw ?? []).forEach((seg: Raw, i: number) => {
    const at = `routing.segments[${i}]`;
    const match = seg.match ?? {};
    const sources = SEGMENT_SOURCES.filter((k) => match[k] !== undefined);
    const tests = SEGMENT_TESTS.filter((k) => match[k] !== undefined);
    if (sources.length !== 1) problems.push(`${at}.match: must name exactly one of header, cookie or query`);
    if (tests.length !== 1) problems.push(`${at}.match: must name exactly one of equals, in, prefix or regex`);
    if ((seg.side === undefined) === (seg.weight === undefined))
      problems.push(`${at}: must have exactly one of side or weight`);
    if (seg.cap_at_weight !== undefined && seg.weight === undefined)
      problems.push(`${at}.cap_at_weight: only applies to a segment with a weight`);
    if (out.some((x) => x.name === seg.name)) problems.push(`${at}.name: duplicate segment name "${seg.name}"`);
    if (sources.length !== 1 || tests.length !== 1) return;
    const kind = sources[0]!;
    const source: SegmentSource = {
      kind,
      name: kind === 'header' ? String(match.header).toLowerCase() : String(match[kind]),
    };
    let test: SegmentTest;
    switch (tests[0]!) {
      case 'equals':
        test = { kind: 'equals', value: match.equals };
        break;
      case 'in':
        test = { kind: 'in', values: match.in };
        break;
      case 'prefix':
        test = { kind: 'prefix', value: match.prefix };
        break;
      case 'regex':
        try {
          test = { kind: 'regex', pattern: match.regex, regex: new RegExp(match.regex) };
        } catch (err) {
          problems.push(`${at}.match.regex: not a valid regular expression (${(err as Error).message})`);
          return;
        }
        break;
    }
    out.push({
      name: seg.name,
      source,
      test,
      side: seg.side,
      weightBp: seg.weight === undefined ? undefined : Math.round(seg.weight * 100),
      capAtWeight: seg.cap_at_weight ?? false,
    });
  });
  return out;
}
