// The layering rules `npm run lint` checks (dependency-cruiser): imports point down the layers only, no cycles.
//
//   cli → veer → admin, fleet, notify → guard → proxy, state → measure, routing → config, errors, rollout.ts
//
// A module may import from its own layer or any layer below it. metrics/ and log.ts are leaf utilities:
// every layer may import them, and they import only the bottom layer. errors/ (the error catalogue) and
// rollout.ts (the rollout's shared vocabulary) sit at the bottom with config/, so every layer can use them.
// Type-only imports count (tsPreCompilationDeps): a type in the wrong layer is an arrow pointing up too.

const LAYERS = [
  ['cli', ['^src/cli/']],
  ['veer', ['^src/veer\\.ts$', '^src/signals\\.ts$']],
  ['admin/fleet', ['^src/admin/', '^src/fleet/', '^src/notify/']],
  ['guard', ['^src/guard/']],
  ['proxy/state', ['^src/proxy/', '^src/state/']],
  ['measure/routing', ['^src/measure/', '^src/routing/']],
  ['config', ['^src/config/', '^src/errors(/|\\.ts$)', '^src/rollout\\.ts$']],
];
// version.ts (veer's version) and demo/ (the demo's mock upstream, which imports nothing of veer) are leaves too.
const LEAVES = ['^src/metrics/', '^src/log\\.ts$', '^src/version\\.ts$', '^src/demo/'];

const upward = LAYERS.slice(1).map(([name, paths], i) => ({
  name: `layer-${name.replace('/', '-')}`,
  comment: `${name} may import only its own layer and those below it (${LAYERS.slice(i + 2)
    .map(([n]) => n)
    .join(', ')}), and the leaf utilities`,
  severity: 'error',
  from: { path: paths },
  to: { path: LAYERS.slice(0, i + 1).flatMap(([, p]) => p) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a cycle makes two modules one; move the shared definition down to the layer that owns it',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
    {
      name: 'leaf-utilities',
      comment: 'metrics/ and log.ts are imported by every layer, so they import only the bottom layer',
      severity: 'error',
      from: { path: LEAVES },
      to: { path: '^src/', pathNot: [...LEAVES, ...LAYERS.at(-1)[1]] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^src/admin/dashboard/vendor/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6'],
    skipAnalysisNotInRules: true,
  },
};
