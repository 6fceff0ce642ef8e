// Child process entry: the two mock upstreams (legacy and new) of a bench run, driven over IPC.

import { type MockBehavior, type MockUpstream, startMockUpstream } from '../mock-upstream.js';
import { serve } from './ipc.js';

type Name = 'legacy' | 'new';

const mocks: Partial<Record<Name, MockUpstream>> = {};

serve({
  async start(payload: { behavior: Partial<MockBehavior>; h2: boolean }) {
    for (const name of ['legacy', 'new'] as const) {
      mocks[name] = await startMockUpstream({ ...payload.behavior, name, h2: payload.h2 });
    }
    return {
      legacy: { url: mocks.legacy!.url, h2Url: mocks.legacy!.h2Url },
      new: { url: mocks.new!.url, h2Url: mocks.new!.h2Url },
    };
  },
  set(payload: Partial<MockBehavior>) {
    for (const m of Object.values(mocks)) m.set(payload);
  },
  stats() {
    return { legacy: { ...mocks.legacy!.stats }, new: { ...mocks.new!.stats } };
  },
  async stop() {
    await Promise.all(Object.values(mocks).map((m) => m.close()));
    setImmediate(() => process.exit(0));
  },
});
