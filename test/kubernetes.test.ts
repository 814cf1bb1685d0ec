import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import { REPO_ROOT, REQUIRED_VARIABLES, SECRET_VARIABLES, documentedVariables, durationSeconds, hasVariable } from './image-deploy-helpers.js';

/**
 * The Kubernetes examples in deploy/kubernetes/: every object is validated against the Kubernetes
 * (and Prometheus Operator) JSON schemas shipped in the `kubernetes-models` packages, offline. Those
 * schemas check types, required fields and enums but accept unknown fields, so the fields that matter
 * for this service are checked one by one below.
 */

const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'v1/Service': Service,
  'v1/Secret': Secret,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  stringData?: Record<string, string>;
  file: string;
}

function load(): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    // YAML 1.1, as Kubernetes reads it (defaultMode: 0440 is octal there).
    for (const doc of parseAllDocuments(readFileSync(join(DIR, file), 'utf8'), { version: '1.1' })) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const value = doc.toJS() as Omit<K8sObject, 'file'> | null;
      if (value) objects.push({ ...value, file });
    }
  }
  return objects;
}

const objects = load();
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
const template = (o: K8sObject) => (o.spec as { template: IPodTemplateSpec }).template;
const backupContainer = (o: K8sObject): IContainer => {
  const c = template(o).spec?.containers.find((x) => x.image?.includes('db-backup-service'));
  if (!c) throw new Error(`${o.file}: no db-backup-service container`);
  return c;
};
const envOf = (c: IContainer) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
const exampleSecret = byKind('Secret').find((s) => s.metadata.name === 'db-backup');

describe('deploy/kubernetes', () => {
  it('has the sidecar, the standalone Deployment, the Secret example and a ServiceMonitor', () => {
    expect(objects.map((o) => `${o.file}:${o.kind}`).sort()).toEqual(
      expect.arrayContaining([
        'deployment.yaml:Deployment',
        'deployment.yaml:Service',
        'secret.example.yaml:Secret',
        'servicemonitor.yaml:ServiceMonitor',
        'sidecar.yaml:Service',
        'sidecar.yaml:StatefulSet',
      ]),
    );
  });

  it.each(objects.map((o) => [`${o.file} ${o.kind}/${o.metadata.name}`, o] as const))(
    '%s validates against its schema',
    (_name, o) => {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `no schema for ${o.apiVersion} ${o.kind}`).toBeDefined();
      const { file: _file, ...data } = o;
      expect(() => new (Model as NonNullable<typeof Model>)(data as never).validate()).not.toThrow();
    },
  );

  it('catches a schema error (the validator is live)', () => {
    const broken = structuredClone(workloads[0] as K8sObject);
    const { file: _file, ...data } = broken;
    (template(broken).spec?.containers[0] as { ports?: unknown }).ports = [{ containerPort: 'http' }];
    const Model = MODELS[`${broken.apiVersion}/${broken.kind}`] as NonNullable<(typeof MODELS)[string]>;
    expect(() => new Model(data as never).validate()).toThrow(/containerPort/);
  });

  describe.each(workloads.map((w) => [`${w.file} ${w.kind}`, w] as const))('%s', (_name, w) => {
    const pod = template(w);
    const c = backupContainer(w);
    const env = envOf(c);

    it('sets every required variable, only names from the README table, secrets as _FILE', () => {
      const backend = env.STORAGE_BACKEND as 'local' | 's3';
      expect(['local', 's3']).toContain(backend);
      for (const name of [...REQUIRED_VARIABLES.common, ...REQUIRED_VARIABLES[backend]]) {
        expect(hasVariable(env, name), `${name} missing`).toBe(true);
      }
      const documented = documentedVariables();
      for (const name of Object.keys(env)) expect(documented, `${name} is not in the README's configuration table`).toContain(name);
      for (const secret of SECRET_VARIABLES) expect(env[secret], `${secret} must come from a file`).toBeUndefined();
    });

    it('mounts each _FILE variable from the Secret, with keys the Secret example has', () => {
      const mounts = c.volumeMounts ?? [];
      for (const [name, value] of Object.entries(env)) {
        if (!name.endsWith('_FILE')) continue;
        const path = String(value);
        const mount = mounts.find((m) => path.startsWith(`${m.mountPath}/`));
        expect(mount, `${name}=${path} is under no volumeMount`).toBeDefined();
        const volume = pod.spec?.volumes?.find((v) => v.name === mount?.name);
        expect(volume?.secret?.secretName).toBe('db-backup');
        const item = volume?.secret?.items?.find((i) => `${mount?.mountPath}/${i.path}` === path);
        expect(item, `${path} is not an item of the secret volume`).toBeDefined();
        expect(Object.keys(exampleSecret?.stringData ?? {})).toContain(item?.key);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) expect(Object.keys(exampleSecret?.stringData ?? {})).toContain(ref.key);
      }
    });

    it('probes /health for readiness and liveness on the container port 8080', () => {
      const port = c.ports?.find((p) => p.containerPort === 8080);
      expect(port?.name).toBe('http');
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        expect(probe?.httpGet?.path).toBe('/health');
        expect([port?.name, 8080]).toContain(probe?.httpGet?.port);
      }
    });

    it('gives it terminationGracePeriodSeconds above SHUTDOWN_TIMEOUT', () => {
      const shutdown = durationSeconds(env.SHUTDOWN_TIMEOUT ?? '60s');
      expect(pod.spec?.terminationGracePeriodSeconds ?? 30).toBeGreaterThan(shutdown);
    });

    it('sets memory requests and limits, and runs it as the image user 10001, non-root, read-only', () => {
      expect(c.resources?.requests?.memory).toBeDefined();
      expect(c.resources?.limits?.memory).toBeDefined();
      const runAsUser = c.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser;
      const runAsNonRoot = c.securityContext?.runAsNonRoot ?? pod.spec?.securityContext?.runAsNonRoot;
      expect(runAsUser).toBe(10001);
      expect(runAsNonRoot).toBe(true);
      expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
      if (c.securityContext?.readOnlyRootFilesystem) {
        const tmp = (c.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
        expect(pod.spec?.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, '/tmp must be writable (db-restore downloads there)').toBeDefined();
      }
    });

    it('is selected by a Service with an "http" port, and carries the prometheus.io annotations', () => {
      const labels = pod.metadata?.labels ?? {};
      const services = byKind('Service').filter((s) => s.file === w.file);
      const svc = services.find((s) =>
        Object.entries((s.spec?.selector as Record<string, string>) ?? {}).every(([k, v]) => labels[k] === v),
      );
      expect(svc, 'no Service selects the pod').toBeDefined();
      const http = (svc?.spec?.ports as { name: string; port: number; targetPort: unknown }[]).find((p) => p.name === 'http');
      expect(http?.port).toBe(8080);
      expect(http?.targetPort).toBe('http');
      expect(pod.metadata?.annotations?.['prometheus.io/scrape']).toBe('true');
      expect(pod.metadata?.annotations?.['prometheus.io/path']).toBe('/metrics');
      expect(pod.metadata?.annotations?.['prometheus.io/port']).toBe('8080');
    });
  });

  it('the ServiceMonitor selects every Service of the examples on their "http" port, path /metrics', () => {
    const monitor = byKind('ServiceMonitor')[0];
    const spec = monitor?.spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
    expect(spec.endpoints[0]).toMatchObject({ port: 'http', path: '/metrics' });
    for (const svc of byKind('Service')) {
      const labels = svc.metadata.labels ?? {};
      expect(Object.entries(spec.selector.matchLabels).every(([k, v]) => labels[k] === v), `${svc.file} ${svc.metadata.name}`).toBe(true);
      expect((svc.spec?.ports as { name: string }[]).map((p) => p.name)).toContain('http');
    }
  });
});
