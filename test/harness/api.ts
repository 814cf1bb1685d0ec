// Raw HTTP helpers for end-to-end tests of the service: status codes and headers are what these
// tests check, so they use fetch directly rather than the SDK.
import type { Job } from '@db-backup-service/contract';
import { pollUntil } from './wait.js';

export interface Api {
  readonly baseUrl: string;
  readonly token: string;
  request(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  json<T>(path: string, init?: RequestInit): Promise<T>;
  /** POST /api/v1/backups, then poll the job to its end; a 409 waits for the running job and retries. */
  backup(opts?: { timeoutMs?: number }): Promise<Job>;
  waitForJob(jobId: string, timeoutMs?: number): Promise<Job>;
}

export function api(baseUrl: string, token: string): Api {
  const request: Api['request'] = (path, init = {}) => {
    const { token: override, ...rest } = init;
    const headers = new Headers(rest.headers);
    const bearer = override === undefined ? token : override;
    if (bearer !== null) headers.set('Authorization', `Bearer ${bearer}`);
    return fetch(`${baseUrl}${path}`, { ...rest, headers });
  };
  const json: Api['json'] = async <T>(path: string, init?: RequestInit) => {
    const res = await request(path, init);
    if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const waitForJob: Api['waitForJob'] = (jobId, timeoutMs = 120_000) =>
    pollUntil(
      async () => {
        const job = await json<Job>(`/api/v1/backups/jobs/${jobId}`);
        return job.status === 'succeeded' || job.status === 'failed' ? job : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `job ${jobId} to finish` },
    );
  const backup: Api['backup'] = async (opts = {}) => {
    for (;;) {
      const res = await request('/api/v1/backups', { method: 'POST' });
      const body = (await res.json()) as Job & { jobId: string };
      if (res.status === 202) return waitForJob(body.jobId, opts.timeoutMs);
      if (res.status !== 409) throw new Error(`POST /api/v1/backups: ${res.status} ${JSON.stringify(body)}`);
      await waitForJob(body.jobId, opts.timeoutMs);
    }
  };
  return { baseUrl, token, request, json, backup, waitForJob };
}
