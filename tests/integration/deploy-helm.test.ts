// The Helm chart deploy/helm/veer, rendered by a real helm: lint, both modes, the config it writes loads in veer, and the values that must fail do.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { REPO } from '../helpers/process.js';
import { programPath, requireProgram } from '../helpers/programs.js';
import { mustBuild } from '../helpers/stack.js';

const run = promisify(execFile);
const CHART = join(REPO, 'deploy/helm/veer');
const HELM = programPath('helm') ?? 'helm';
const dir = mkdtempSync(join(tmpdir(), 'veer-helm-'));

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are free-form YAML, read field by field below
type Doc = any;

/** helm with `values` written to a file; resolves with its exit code and output. */
async function helm(args: string[], values: Doc = {}): Promise<{ code: number; out: string }> {
  const file = join(dir, `values-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(values));
  try {
    const { stdout, stderr } = await run(HELM, [...args, '-f', file], { cwd: REPO, timeout: 30_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

/** The manifests `helm template` renders for `values`, by kind (and name when a kind repeats). */
async function render(values: Doc = {}): Promise<Doc[]> {
  const { code, out } = await helm(['template', 'chat', CHART], values);
  expect(code, out).toBe(0);
  return parseAllDocuments(out)
    .map((d) => {
      expect(d.errors, d.errors.map((e) => e.message).join('; ')).toEqual([]);
      return d.toJS();
    })
    .filter(Boolean);
}

const SIDECAR = {
  mode: 'sidecar',
  sidecar: {
    containers: [
      {
        name: 'app',
        image: 'ghcr.io/example/chat-app:1.0.0',
        ports: [{ name: 'http', containerPort: 3000 }],
        env: [{ name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:8080/v1' }],
      },
    ],
  },
};

/** veer's own loader on the config the chart wrote, with the token variables it names set. */
function loadRendered(docs: Doc[]) {
  const configMap = docs.find((d) => d.kind === 'ConfigMap');
  const doc = parseYaml(configMap.data['veer.yaml']);
  for (const t of doc.admin?.tokens ?? []) process.env[t.env] ??= 'a-helm-test-token-of-32-characters';
  return { doc, config: mustBuild(doc) };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(requireProgram('helm'))('deploy/helm/veer', () => {
  it('passes helm lint in both modes', async () => {
    for (const values of [{}, SIDECAR]) {
      const { code, out } = await helm(['lint', '--strict', CHART], values);
      expect(code, out).toBe(0);
      expect(out).toContain('0 chart(s) failed');
    }
  });

  it('gateway: veer is the Deployment, the proxy Service fronts it, the config it writes loads in veer', async () => {
    const docs = await render();
    const kinds = docs.map((d) => d.kind).sort();
    expect(kinds).toEqual([
      'ConfigMap',
      'Deployment',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'Service',
      'ServiceMonitor',
    ]);
    const deployment = docs.find((d) => d.kind === 'Deployment');
    const pod = deployment.spec.template.spec;
    expect(pod.initContainers).toBeUndefined();
    const [veer] = pod.containers;
    expect(veer.name).toBe('veer');
    const { doc, config } = loadRendered(docs);
    expect(doc.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.admin.host).toBe('0.0.0.0');
    expect(config.state.path.startsWith('/var/lib/veer/')).toBe(true);
    const proxy = docs.find((d) => d.kind === 'Service' && d.spec.ports[0].name === 'proxy');
    expect(proxy.spec.ports[0]).toMatchObject({ port: 8080, targetPort: 'proxy' });
    expect(proxy.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.replicas).toBe(2);
  });

  it('sidecar: the app with veer as a native sidecar on loopback, started first, stopped last', async () => {
    const docs = await render(SIDECAR);
    const pod = docs.find((d) => d.kind === 'Deployment').spec.template.spec;
    const [veer] = pod.initContainers;
    expect(veer).toMatchObject({ name: 'veer', restartPolicy: 'Always' });
    expect(pod.containers.map((c: Doc) => c.name)).toEqual(['app']);
    const { doc } = loadRendered(docs);
    expect(doc.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(docs.filter((d) => d.kind === 'Service').map((d) => d.metadata.name)).toEqual(['chat-veer-admin']);
  });

  it('reads every admin token from the Secret into the variable the config names', async () => {
    const docs = await render({
      adminTokens: {
        secretName: 'veer-tokens',
        tokens: [
          { name: 'oncall', key: 'oncall', role: 'operator' },
          { name: 'grafana-reader', key: 'reader', role: 'read' },
        ],
      },
    });
    const veer = docs.find((d) => d.kind === 'Deployment').spec.template.spec.containers[0];
    const { doc } = loadRendered(docs);
    expect(doc.admin.tokens).toEqual([
      { name: 'oncall', role: 'operator', env: 'VEER_ADMIN_TOKEN_ONCALL' },
      { name: 'grafana-reader', role: 'read', env: 'VEER_ADMIN_TOKEN_GRAFANA_READER' },
    ]);
    for (const t of doc.admin.tokens) {
      const env = veer.env.find((e: Doc) => e.name === t.env);
      expect(env.valueFrom.secretKeyRef.name, t.env).toBe('veer-tokens');
    }
    expect(docs.some((d) => d.kind === 'Secret')).toBe(false);
    // adminTokens.create makes the Secret, and insists on a value per key.
    const created = await render({
      adminTokens: { create: true, values: { operator: 'try-it-out-token-0123456789' } },
    });
    expect(created.find((d) => d.kind === 'Secret').stringData).toEqual({ operator: 'try-it-out-token-0123456789' });
    const missing = await helm(['template', 'chat', CHART], { adminTokens: { create: true } });
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain('adminTokens.values.operator');
  });

  it("probes /readyz and /healthz on the admin port, pauses with the kubelet's sleep action, and sets resources", async () => {
    for (const values of [{}, SIDECAR]) {
      const pod = (await render(values)).find((d) => d.kind === 'Deployment').spec.template.spec;
      const veer = [...(pod.initContainers ?? []), ...pod.containers].find((c: Doc) => c.name === 'veer');
      expect(veer.startupProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
      expect(veer.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
      expect(veer.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
      expect(veer.lifecycle.preStop).toEqual({ sleep: { seconds: 5 } });
      expect(veer.resources.limits.memory).toBe('256Mi');
      expect(veer.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      // preStop and drain fit in the grace period.
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(5 + 20);
    }
  });

  it('keeps the admin port to the peers named, the proxy (gateway) or the app ports (sidecar) open', async () => {
    const gateway = (await render()).find((d) => d.kind === 'NetworkPolicy');
    expect(gateway.spec.policyTypes).toEqual(['Ingress']);
    const [admin, proxy] = gateway.spec.ingress;
    expect(admin.ports).toEqual([{ port: 'admin', protocol: 'TCP' }]);
    expect(admin.from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
    expect(proxy).toEqual({ ports: [{ port: 'proxy', protocol: 'TCP' }] });
    const sidecar = (await render(SIDECAR)).find((d) => d.kind === 'NetworkPolicy');
    expect(sidecar.spec.ingress.map((r: Doc) => r.ports)).toEqual([
      [{ port: 'admin', protocol: 'TCP' }],
      [{ port: 3000, protocol: 'TCP' }],
    ]);
    // No peers for the admin port: no rule lets anyone in.
    const closed = (await render({ networkPolicy: { adminFrom: [] } })).find((d) => d.kind === 'NetworkPolicy');
    expect(closed.spec.ingress.some((r: Doc) => r.ports.some((p: Doc) => p.port === 'admin'))).toBe(false);
  });

  it('has the ServiceMonitor scrape /metrics on the admin Service with job="veer", and the PDB select the pods', async () => {
    const docs = await render();
    const monitor = docs.find((d) => d.kind === 'ServiceMonitor');
    const admin = docs.find((d) => d.kind === 'Service' && d.spec.ports[0].name === 'admin');
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) expect(admin.metadata.labels[k]).toBe(v);
    expect(monitor.spec.endpoints).toEqual([
      { port: 'admin', path: '/metrics', interval: '15s', relabelings: [{ targetLabel: 'job', replacement: 'veer' }] },
    ]);
    const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget');
    const deployment = docs.find((d) => d.kind === 'Deployment');
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(pdb.spec.maxUnavailable).toBe(1);
    const off = await render({ serviceMonitor: { enabled: false }, podDisruptionBudget: { enabled: false } });
    expect(off.map((d) => d.kind)).not.toContain('ServiceMonitor');
    expect(off.map((d) => d.kind)).not.toContain('PodDisruptionBudget');
  });

  it('refuses values that cannot work, naming the value', async () => {
    const cases: [Doc, string][] = [
      [{ mode: 'mesh' }, 'mode: must be gateway or sidecar, got "mesh"'],
      [{ mode: 'sidecar' }, "sidecar.containers: sidecar mode needs your application's containers"],
      [{ podDisruptionBudget: { minAvailable: 1, maxUnavailable: 1 } }, 'set minAvailable or maxUnavailable, not both'],
    ];
    for (const [values, message] of cases) {
      const { code, out } = await helm(['template', 'chat', CHART], values);
      expect(code, JSON.stringify(values)).not.toBe(0);
      expect(out).toContain(message);
    }
  });
});
