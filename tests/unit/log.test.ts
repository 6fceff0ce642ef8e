import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, flushLogger } from '../../src/log.js';
import { waitFor } from '../helpers/stack.js';

describe('buffered log destination', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const fileLogger = () => {
    const dir = mkdtempSync(join(tmpdir(), 'veer-log-'));
    dirs.push(dir);
    const path = join(dir, 'out.log');
    const logger = createLogger({ level: 'info', destination: openSync(path, 'w') });
    const lines = () =>
      readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '');
    return { logger, lines };
  };

  it('holds a line, then writes it by itself within the flush interval, with no other write to push it', async () => {
    const { logger, lines } = fileLogger();
    logger.info('first');
    expect(lines()).toEqual([]);
    await waitFor(() => lines().length === 1, 2_000, 10);
    expect(JSON.parse(lines()[0]!)).toMatchObject({ msg: 'first', service: 'veer' });
    // A later quiet line goes out the same way: the timer is armed again by the write.
    logger.info('second');
    await waitFor(() => lines().length === 2, 2_000, 10);
  });

  it('writes everything on flushLogger, and a line after a quiet spell still goes out by itself', async () => {
    const { logger, lines } = fileLogger();
    for (let i = 0; i < 100; i++) logger.info({ i }, 'line');
    flushLogger(logger);
    await waitFor(() => lines().length === 100, 2_000, 10);
    await new Promise((resolve) => setTimeout(resolve, 400));
    logger.info('after a quiet spell');
    expect(lines().length).toBe(100);
    await waitFor(() => lines().length === 101, 2_000, 10);
  });
});
