// The state file: atomic replace, nothing left behind when a write fails, unreadable files named.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshState } from '../../src/guard/controller.js';
import { StateFileError, StateStore } from '../../src/state/store.js';
import { mustBuild, rawConfig, stateFiles } from '../helpers/stack.js';

const config = mustBuild(rawConfig('http://127.0.0.1:9', 'http://127.0.0.1:9'));

describe('StateStore', () => {
  it('saves and loads a state whole, replacing the previous one', () => {
    const { path } = stateFiles();
    const store = new StateStore(path);
    expect(store.load()).toBeUndefined();
    const first = freshState(config, 1_000);
    store.save(first);
    store.save({ ...first, state: 'killed', weight_bp: 0, version: 2 });
    expect(store.load()).toMatchObject({ state: 'killed', weight_bp: 0, version: 2 });
    expect(readdirSync(dirname(path))).toEqual(['state.json']);
  });

  it('leaves no temp file behind when the final rename fails, and the old state stays', () => {
    const { path } = stateFiles();
    // A non-empty directory where the file should go: the rename over it fails (EISDIR / ENOTEMPTY).
    mkdirSync(path);
    writeFileSync(join(path, 'keep'), 'x');
    const store = new StateStore(path);
    expect(() => store.save(freshState(config, 1_000))).toThrow();
    expect(readdirSync(dirname(path))).toEqual(['state.json']);
    expect(readFileSync(join(path, 'keep'), 'utf8')).toBe('x');
  });

  it('names the file and the reason when it cannot be read', () => {
    const { path } = stateFiles();
    writeFileSync(path, '[1, 2]');
    expect(() => new StateStore(path).load()).toThrow(StateFileError);
    expect(() => new StateStore(path).load()).toThrow(`state file ${path} does not hold a JSON object`);
  });
});
