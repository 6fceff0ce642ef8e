import { describe, expect, it } from 'vitest';
import { extractKey } from '../../src/routing/key.js';
import { murmur3, murmur3Prefixed, prefixState } from '../../src/routing/murmur3.js';
import { BUCKETS, bucketOf, decide, makeTable, type RoutingTable } from '../../src/routing/table.js';
import { seededRandom } from '../helpers/random.js';

function table(weightPercent: number, fields: Partial<Parameters<typeof makeTable>[0]> = {}): RoutingTable {
  return makeTable({
    rolloutId: 'r',
    salt: 'salt-1',
    weightBp: Math.round(weightPercent * 100),
    state: 'progressing',
    forceHeader: undefined,
    version: 1,
    ...fields,
  });
}

// Seeded: the same 100,000 keys every run. Drawn afresh, the 50 % share strays past ±0.5 points (3.2 σ)
// about once in 640 runs.
const draw = seededRandom(20261126);
const keys = Array.from({ length: 100_000 }, () =>
  Buffer.from(Array.from({ length: 9 }, () => Math.floor(draw() * 256))).toString('base64url'),
);

describe('murmur3_32', () => {
  it('matches the reference vectors of MurmurHash3_x86_32', () => {
    expect(murmur3('', 0)).toBe(0);
    expect(murmur3('', 1)).toBe(0x514e28b7);
    expect(murmur3('hello', 0)).toBe(0x248bfa47);
    expect(murmur3('Hello, world!', 1234)).toBe(0xfaf6cdb3);
    expect(murmur3('The quick brown fox jumps over the lazy dog', 0x9747b28c)).toBe(0x2fa826cd);
    expect(murmur3('abc', 0)).toBe(0xb3dd93fa);
  });

  it('hashes the UTF-8 bytes of non-ASCII keys (values from a C reference implementation)', () => {
    expect(murmur3('é')).toBe(269551495);
    expect(murmur3('ключ-é')).toBe(2221380836);
    expect(murmur3('salt-1:user-42')).toBe(1339135696);
  });
});

describe('murmur3_32 from a saved salt prefix', () => {
  it('equals hashing the joined string, for every prefix and key length around a block', () => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_:.';
    const text = (n: number, seed: number) =>
      Array.from({ length: n }, (_, i) => alphabet[(seed * 31 + i * 7) % alphabet.length]).join('');
    for (let p = 0; p <= 9; p++) {
      const prefix = text(p, p);
      const state = prefixState(prefix);
      for (let k = 0; k <= 13; k++) {
        const key = text(k, k + 3);
        expect(murmur3Prefixed(state, key), `prefix ${JSON.stringify(prefix)} key ${JSON.stringify(key)}`).toBe(
          murmur3(prefix + key),
        );
      }
    }
  });

  it('falls back to UTF-8 bytes for a non-ASCII key or salt', () => {
    for (const [prefix, key] of [
      ['rollout-1:', 'josé'],
      ['rollout-1:', '用户-42'],
      ['ß:', 'user-1'],
      ['été-2026:', 'ключ'],
    ] as const) {
      expect(murmur3Prefixed(prefixState(prefix), key)).toBe(murmur3(prefix + key));
    }
  });
});

describe('bucketing', () => {
  it('buckets by murmur3_32(salt + ":" + key) mod 10000, as documented', () => {
    const t = table(30);
    for (const key of keys.slice(0, 2000)) expect(decide(t, key, undefined).bucket).toBe(bucketOf(t.salt, key));
  });

  it('always gives the same key the same side', () => {
    const t = table(30);
    for (const key of keys.slice(0, 1000)) {
      const first = decide(t, key, undefined);
      for (let i = 0; i < 3; i++) expect(decide(t, key, undefined)).toEqual(first);
    }
  });

  it.each([1, 5, 50])('puts %d %% of 100,000 random keys on new, within ±0.5 points', (weight) => {
    const t = table(weight);
    let onNew = 0;
    for (const key of keys) if (decide(t, key, undefined).upstream === 'new') onNew++;
    const share = (100 * onNew) / keys.length;
    expect(Math.abs(share - weight)).toBeLessThanOrEqual(0.5);
  });

  it('moves nobody from new back to legacy when the weight rises from 5 % to 25 %', () => {
    const at5 = table(5);
    const at25 = table(25);
    let stayed = 0;
    for (const key of keys) {
      if (decide(at5, key, undefined).upstream === 'new') {
        expect(decide(at25, key, undefined).upstream).toBe('new');
        stayed++;
      }
    }
    expect(stayed).toBeGreaterThan(4000);
  });

  it('draws a different cohort under a different salt', () => {
    const a = table(10, { salt: 'rollout-a' });
    const b = table(10, { salt: 'rollout-b' });
    let both = 0;
    let inA = 0;
    for (const key of keys) {
      const onA = decide(a, key, undefined).upstream === 'new';
      if (onA) inA++;
      if (onA && decide(b, key, undefined).upstream === 'new') both++;
    }
    // Independent cohorts overlap by about 10 % of 10 %; the same cohort would overlap fully.
    expect(both / inA).toBeLessThan(0.2);
  });

  it('buckets by murmur3_32(salt:key) mod 10000', () => {
    expect(bucketOf('s', 'user-1')).toBe(murmur3('s:user-1') % BUCKETS);
    expect(decide(table(100), 'user-1', undefined)).toEqual({
      upstream: 'new',
      reason: 'bucket',
      bucket: bucketOf('salt-1', 'user-1'),
    });
    expect(decide(table(0), 'user-1', undefined).upstream).toBe('legacy');
  });

  it('honours overrides before the hash, and the kill flag before everything', () => {
    const t = table(0, {
      overrides: new Map([
        ['tester', 'new'],
        ['vip', 'legacy'],
      ]) as never,
    });
    expect(decide(t, 'tester', undefined)).toEqual({ upstream: 'new', reason: 'override', bucket: -1 });
    const full = table(100, { overrides: new Map([['vip', 'legacy']]) as never });
    expect(decide(full, 'vip', undefined).upstream).toBe('legacy');
    const killed = table(100, { state: 'killed', overrides: new Map([['tester', 'new']]) as never });
    expect(decide(killed, 'tester', 'new')).toEqual({ upstream: 'legacy', reason: 'killed', bucket: -1 });
  });

  it('lets a trusted force header pick the side, after overrides', () => {
    const t = table(0, { forceHeader: 'x-veer-force', overrides: new Map([['vip', 'legacy']]) as never });
    expect(decide(t, 'anyone', 'new')).toEqual({ upstream: 'new', reason: 'forced', bucket: -1 });
    expect(decide(t, 'vip', 'new').upstream).toBe('legacy');
    expect(decide(t, 'anyone', 'bogus').reason).toBe('bucket');
  });

  it('buckets keyless requests at random, still by the weight', () => {
    const t = table(20);
    let onNew = 0;
    for (let i = 0; i < 20_000; i++) {
      const d = decide(t, undefined, undefined);
      expect(d.reason).toBe('random');
      if (d.upstream === 'new') onNew++;
    }
    expect(onNew / 20_000).toBeGreaterThan(0.18);
    expect(onNew / 20_000).toBeLessThan(0.22);
  });
});

describe('key extraction', () => {
  const sources = [
    { kind: 'header', name: 'x-user-id' },
    { kind: 'cookie', name: 'session' },
    { kind: 'query', name: 'user' },
    { kind: 'client_address' },
  ] as const;

  it('takes the first configured source that is present', () => {
    expect(extractKey(sources, { 'x-user-id': 'u1', cookie: 'session=s1' }, '/?user=q1', '10.0.0.1')).toBe('u1');
    expect(extractKey(sources, { cookie: 'a=1; session=s1; b=2' }, '/?user=q1', '10.0.0.1')).toBe('s1');
    expect(extractKey(sources, { cookie: 'a=1' }, '/v1?x=1&user=q1', '10.0.0.1')).toBe('q1');
    expect(extractKey(sources, {}, '/v1', '10.0.0.1')).toBe('10.0.0.1');
    expect(extractKey(sources.slice(0, 3), {}, '/v1', '10.0.0.1')).toBeUndefined();
  });

  it('treats empty values as absent and reads quoted and split cookies', () => {
    expect(extractKey(sources.slice(0, 2), { 'x-user-id': '', cookie: 'session=' }, '/', undefined)).toBeUndefined();
    expect(extractKey(sources.slice(1, 2), { cookie: 'session="abc"' }, '/', undefined)).toBe('abc');
    expect(extractKey(sources.slice(1, 2), { cookie: ['a=1', 'session=z'] as never }, '/', undefined)).toBe('z');
    expect(extractKey(sources.slice(0, 1), { 'x-user-id': ['first', 'second'] }, '/', undefined)).toBe('first');
  });

  it('reads a key the same from a header, a cookie and the query, whatever its characters', () => {
    // What node hands over for the UTF-8 bytes of "josé" in a header or cookie (one character per byte).
    const latin1 = Buffer.from('josé', 'utf8').toString('latin1');
    expect(extractKey(sources.slice(0, 1), { 'x-user-id': latin1 }, '/', undefined)).toBe('josé');
    expect(extractKey(sources.slice(1, 2), { cookie: `session=${latin1}` }, '/', undefined)).toBe('josé');
    expect(extractKey(sources.slice(2, 3), {}, '/?user=jos%C3%A9', undefined)).toBe('josé');
    // Bytes that are not UTF-8 stay distinct keys instead of all becoming U+FFFD.
    expect(extractKey(sources.slice(0, 1), { 'x-user-id': 'jos\u00e9' }, '/', undefined)).toBe('jos\u00e9');
    const e9 = extractKey(sources.slice(2, 3), {}, '/?user=%E9', undefined);
    const e8 = extractKey(sources.slice(2, 3), {}, '/?user=%E8', undefined);
    expect(e9).not.toBe(e8);
  });

  it('takes a key header line whole, comma and all (the upstream gets it so), and skips an empty cookie for a later one', () => {
    // A key header on several lines never gets here: the proxy refuses it (tests/reliability/forwarding.test.ts).
    expect(extractKey(sources.slice(0, 1), { 'x-user-id': 'a, b' }, '/', undefined)).toBe('a, b');
    expect(extractKey(sources.slice(1, 2), { cookie: 'session=; session=abc' }, '/', undefined)).toBe('abc');
  });

  it('caps very long keys so hashing stays cheap', () => {
    const long = 'k'.repeat(10_000);
    expect(extractKey(sources.slice(0, 1), { 'x-user-id': long }, '/', undefined)).toHaveLength(512);
  });
});
