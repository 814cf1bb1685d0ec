import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * How many CPUs this process may really use: the CPUs it may run on (os.availableParallelism(),
 * which honours the affinity mask but not every Node version honours a container's CPU quota)
 * capped by the cgroup's CPU quota, rounded up. A sidecar limited to `cpu: 2` on a 64-core node
 * would otherwise start 64 compression threads that compete with PostgreSQL for 2 CPUs.
 * `cgroupRoot` is a parameter for tests.
 */
export function usableCpus(cgroupRoot: string = CGROUP_ROOT): number {
  const cpus = Math.max(1, availableParallelism());
  const quota = cgroupCpuQuota(cgroupRoot);
  return quota === null ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/** CPUs allowed by the cgroup quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`); null when unlimited or unknown. */
export function cgroupCpuQuota(cgroupRoot: string = CGROUP_ROOT): number | null {
  const v2 = readText(path.join(cgroupRoot, 'cpu.max'));
  if (v2 !== null) {
    // "max 100000" (no limit) or "<quota> <period>" in microseconds.
    const [quota, period] = v2.split(/\s+/);
    return ratio(quota, period);
  }
  for (const dir of [path.join(cgroupRoot, 'cpu'), path.join(cgroupRoot, 'cpu,cpuacct'), cgroupRoot]) {
    const quota = readText(path.join(dir, 'cpu.cfs_quota_us'));
    if (quota === null) continue;
    // -1: no limit.
    return ratio(quota, readText(path.join(dir, 'cpu.cfs_period_us')) ?? undefined);
  }
  return null;
}

function ratio(quota: string | undefined, period: string | undefined): number | null {
  const q = Number(quota);
  const p = Number(period);
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}
