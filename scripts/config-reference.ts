// Writes docs/config.md's config reference table from config/veer.schema.json (run: npm run docs:config).

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type Schema = {
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  $ref?: string;
  enum?: unknown[];
  const?: unknown;
  required?: string[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  minimum?: number;
  maximum?: number;
};

const root = new URL('..', import.meta.url);
const schema = JSON.parse(readFileSync(new URL('config/veer.schema.json', root), 'utf8')) as Schema & {
  definitions: Record<string, Schema>;
};

function resolve(s: Schema): Schema {
  if (!s.$ref) return s;
  const def = schema.definitions[s.$ref.replace('#/definitions/', '')]!;
  return { ...def, description: s.description ?? def.description };
}

function typeOf(s: Schema, ref?: string): string {
  if (ref === '#/definitions/duration') return 'duration';
  if (ref === '#/definitions/ratio') return 'ratio';
  if (s.enum) return s.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (s.const !== undefined) return `\`${String(s.const)}\``;
  if (s.type === 'array') {
    const item = resolve(s.items ?? {});
    if (item.anyOf) return `list of ${item.anyOf[0]?.type === 'number' ? 'numbers' : 'strings'} or objects`;
    return `list of ${item.properties ? 'objects' : typeOf(item, s.items?.$ref)}`;
  }
  if (s.anyOf) return 'string or object';
  const range = s.minimum !== undefined && s.maximum !== undefined ? ` ${s.minimum}–${s.maximum}` : '';
  return `${Array.isArray(s.type) ? s.type.join('/') : (s.type ?? 'object')}${range}`;
}

export function rows(s: Schema, prefix: string, required: string[] = []): string[] {
  const out: string[] = [];
  for (const [name, raw] of Object.entries(s.properties ?? {})) {
    const field = resolve(raw);
    const path = prefix ? `${prefix}.${name}` : name;
    const req = required.includes(name) ? ' **(required)**' : '';
    out.push(`| \`${path}\` | ${typeOf(field, raw.$ref)} | ${(field.description ?? '').replace(/\|/g, '\\|')}${req} |`);
    if (field.properties) out.push(...rows(field, path, field.required));
    const item = field.items ? resolve(field.items) : undefined;
    if (item?.properties) out.push(...rows(item, `${path}[]`, item.required));
  }
  return out;
}

export function configReference(): string {
  return ['| field | type | meaning (default) |', '| --- | --- | --- |', ...rows(schema, '', schema.required)].join(
    '\n',
  );
}

const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';

export function withReference(readme: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error('docs/config.md has no config-reference markers');
  return `${readme.slice(0, a + START.length)}\n${configReference()}\n${readme.slice(b)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = new URL('docs/config.md', root);
  writeFileSync(path, withReference(readFileSync(path, 'utf8')));
  process.stdout.write('docs/config.md config reference updated\n');
}
