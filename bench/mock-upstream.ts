// The mock inference upstream, for the bench drivers and tests: it lives in src/demo/ (the demo ships it) and is re-exported here.
export * from '../src/demo/mock-upstream.js';
