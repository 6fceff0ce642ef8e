// Checking a config document against config/veer.schema.json, with one problem per field that names it and says why.

import { Ajv, type ErrorObject } from 'ajv';
import schema from '../../config/veer.schema.json' with { type: 'json' };
import { parseDuration, parseRatio, parseSize } from './units.js';

function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && !u.search && !u.hash;
  } catch {
    return false;
  }
}

// multipleOfPrecision: 2.3 / 0.01 is 229.99999999999997 in floating point; without it ajv refuses one two-decimal
// weight in seven (2.3, 0.29, 33.33...).
const ajv = new Ajv({
  allErrors: true,
  strict: true,
  strictRequired: false,
  allowUnionTypes: true,
  multipleOfPrecision: 9,
});
ajv.addFormat('duration', { type: 'string', validate: (s: string) => parseDuration(s) !== undefined });
ajv.addFormat('percent', { type: 'string', validate: (s: string) => parseRatio(s) !== undefined });
ajv.addFormat('size', { type: 'string', validate: (s: string) => parseSize(s) !== undefined });
ajv.addFormat('http-url', { type: 'string', validate: isHttpUrl });
export const validateSchema = ajv.compile(schema);

const FORMAT_HINT: Record<string, string> = {
  duration: 'must be a duration such as 250ms, 2s or 1m',
  percent: 'must be a ratio between 0 and 1 or a percentage such as 1%',
  'http-url': 'must be an http(s) URL without query or fragment',
  size: 'must be a size such as 65536, 512KiB or 1MiB',
};

function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(root)' : out;
}

function reasonOf(errors: ErrorObject[]): string {
  const first = (kw: string) => errors.find((e) => e.keyword === kw);
  const format = first('format');
  if (format) return FORMAT_HINT[String(format.params.format)] ?? format.message ?? 'is invalid';
  const refs = errors.map((e) => e.schemaPath).join(' ');
  for (const kw of [
    'enum',
    'const',
    'pattern',
    'minimum',
    'maximum',
    'exclusiveMinimum',
    'multipleOf',
    'minLength',
    'maxLength',
    'minItems',
    'maxItems',
    'uniqueItems',
    'minProperties',
    'maxProperties',
  ]) {
    const e = first(kw);
    if (!e) continue;
    if (kw === 'enum')
      return `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    if (kw === 'const') return `must be ${JSON.stringify(e.params.allowedValue)}`;
    if (kw === 'multipleOf') return `must have at most two decimals (a multiple of ${e.params.multipleOf})`;
    if (kw === 'pattern') return `must match ${e.params.pattern}`;
    if (kw === 'maxProperties' || kw === 'minProperties')
      return 'must name exactly one source (header, cookie, query or client_address)';
    return e.message ?? 'is invalid';
  }
  if (refs.includes('definitions/duration')) return FORMAT_HINT.duration!;
  if (refs.includes('definitions/ratio')) return FORMAT_HINT.percent!;
  if (refs.includes('definitions/size')) return FORMAT_HINT.size!;
  if (refs.includes('definitions/rule'))
    return 'must be a rule string, an object with a rule string, or a query rule {name, query, max}';
  if (refs.includes('definitions/tokenSource') && first('oneOf')) return 'must name exactly one of env or file';
  const types = [...new Set(errors.filter((e) => e.keyword === 'type').map((e) => String(e.params.type)))];
  if (types.length > 0) return `must be ${types.join(' or ')}`;
  return errors[0]?.message ?? 'is invalid';
}

/** One line per field: `upstreams.new.url: must be an http(s) URL`. */
export function schemaProblems(errors: ErrorObject[]): string[] {
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    let path: string;
    if (e.keyword === 'additionalProperties')
      path = `${fieldPath(e.instancePath, String(e.params.additionalProperty))}\0unknown`;
    else if (e.keyword === 'required')
      path = `${fieldPath(e.instancePath, String(e.params.missingProperty))}\0required`;
    else path = fieldPath(e.instancePath);
    const list = byPath.get(path) ?? [];
    list.push(e);
    byPath.set(path, list);
  }
  const out: string[] = [];
  const paths = [...byPath.keys()].map((k) => k.split('\0')[0]!);
  for (const [key, errs] of byPath) {
    const [path, special] = key.split('\0');
    // A value that may be a number or an object (a step) and is a bad object: name the bad field, not
    // "must be number" for the value as a whole.
    const deeper = paths.some((p) => p !== path && (p.startsWith(`${path}.`) || p.startsWith(`${path}[`)));
    if (special === undefined && deeper && errs.every((e) => e.keyword === 'type' || e.keyword === 'anyOf')) continue;
    if (special === 'unknown') out.push(`${path}: unknown field`);
    else if (special === 'required') out.push(`${path}: is required`);
    else out.push(`${path}: ${reasonOf(errs)}`);
  }
  return out;
}
