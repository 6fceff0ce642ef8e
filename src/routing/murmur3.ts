// murmur3_32 (x86, 32-bit) over the UTF-8 bytes of a string, written out because npm's versions cost ~10x more.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function scramble(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mix(h: number, k: number): number {
  h ^= scramble(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finalize(h: number, len: number): number {
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hashBytes(bytes: Uint8Array, seed: number): number {
  const len = bytes.length;
  const tail = len & ~3;
  let h = seed >>> 0;
  for (let i = 0; i < tail; i += 4) {
    h = mix(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
  }
  const rem = len & 3;
  if (rem !== 0) {
    let k = bytes[tail]!;
    if (rem > 1) k ^= bytes[tail + 1]! << 8;
    if (rem > 2) k ^= bytes[tail + 2]! << 16;
    h ^= scramble(k);
  }
  return finalize(h, len);
}

/**
 * The hash state after a fixed ASCII prefix (a rollout's `salt:`): whole 4-byte blocks already mixed, the
 * 0–3 bytes left over carried into the key's first block. Hashing prefix + key from it gives exactly
 * murmur3(prefix + key) without building (and flattening) the joined string on every request.
 */
export interface PrefixState {
  readonly prefix: string;
  readonly seed: number;
  readonly ascii: boolean;
  readonly h: number;
  readonly carry: number;
  readonly carryLen: number;
}

export function prefixState(prefix: string, seed = 0): PrefixState {
  let ascii = true;
  for (let i = 0; i < prefix.length; i++) if (prefix.charCodeAt(i) > 0x7f) ascii = false;
  let h = seed >>> 0;
  const tail = prefix.length & ~3;
  if (ascii) {
    for (let i = 0; i < tail; i += 4) {
      h = mix(
        h,
        prefix.charCodeAt(i) |
          (prefix.charCodeAt(i + 1) << 8) |
          (prefix.charCodeAt(i + 2) << 16) |
          (prefix.charCodeAt(i + 3) << 24),
      );
    }
  }
  let carry = 0;
  for (let i = tail; i < prefix.length; i++) carry |= prefix.charCodeAt(i) << (8 * (i - tail));
  return { prefix, seed, ascii, h, carry, carryLen: prefix.length - tail };
}

function hashUtf8(state: PrefixState, key: string): number {
  return hashBytes(Buffer.from(state.prefix + key, 'utf8'), state.seed);
}

/** murmur3(state.prefix + key), computed from the prefix's saved state. */
export function murmur3Prefixed(state: PrefixState, key: string): number {
  if (!state.ascii) return hashUtf8(state, key);
  const len = key.length;
  let h = state.h;
  let carry = state.carry;
  let n = state.carryLen;
  let i = 0;
  let high = 0;
  if (n !== 0) {
    while (n < 4 && i < len) {
      const c = key.charCodeAt(i++);
      high |= c;
      carry |= c << (8 * n++);
    }
    if (n === 4) {
      h = mix(h, carry);
      carry = 0;
      n = 0;
    }
  }
  for (; i + 4 <= len; i += 4) {
    const a = key.charCodeAt(i);
    const b = key.charCodeAt(i + 1);
    const c = key.charCodeAt(i + 2);
    const d = key.charCodeAt(i + 3);
    high |= a | b | c | d;
    h = mix(h, a | (b << 8) | (c << 16) | (d << 24));
  }
  for (; i < len; i++) {
    const c = key.charCodeAt(i);
    high |= c;
    carry |= c << (8 * n++);
  }
  // A non-ASCII key is hashed over its UTF-8 bytes instead: checked once, after the fact, so ASCII keys
  // (nearly all) read each character once.
  if (high > 0x7f) return hashUtf8(state, key);
  if (n !== 0) h ^= scramble(carry);
  return finalize(h, state.prefix.length + len);
}

const NO_PREFIX = prefixState('');

/** murmur3_32 of a string; ASCII strings (the usual key) are hashed from their char codes without encoding. */
export function murmur3(text: string, seed = 0): number {
  return murmur3Prefixed(seed === 0 ? NO_PREFIX : prefixState('', seed), text);
}
