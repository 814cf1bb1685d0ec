import { initContract } from '@ts-rest/core';
import { z } from 'zod';
import { BackupSchema, HealthSchema, InfoSchema, JobConflictSchema, JobSchema, ProblemSchema } from './schemas.js';

const c = initContract();

/** Route metadata read by the server's auth middleware and by the OpenAPI generator. */
export interface RouteMetadata {
  readonly auth: 'bearer' | 'none';
  /** The 200 body is a gzip stream, not JSON. */
  readonly binary?: true;
}

const bearer = { auth: 'bearer' } as const satisfies RouteMetadata;
const open = { auth: 'none' } as const satisfies RouteMetadata;
const download = { auth: 'bearer', binary: true } as const satisfies RouteMetadata;

/** Body of a download: a gzip stream (`application/gzip`). */
const GzipBody = c.otherResponse({ contentType: 'application/gzip', body: z.unknown() });

export const apiContract = c.router(
  {
    triggerBackup: {
      method: 'POST',
      path: '/api/v1/backups',
      body: c.noBody(),
      summary: 'Trigger a backup now',
      description: 'Starts a backup job and returns it (202). At most one backup runs at a time: while one runs, the answer is 409 with the running job\'s id.',
      responses: { 202: JobSchema, 401: ProblemSchema, 409: JobConflictSchema },
      metadata: bearer,
    },
    getJob: {
      method: 'GET',
      path: '/api/v1/backups/jobs/:jobId',
      pathParams: z.object({ jobId: z.string() }),
      summary: 'Status of a backup job',
      responses: { 200: JobSchema, 401: ProblemSchema, 404: ProblemSchema },
      metadata: bearer,
    },
    listBackups: {
      method: 'GET',
      path: '/api/v1/backups',
      summary: 'List backups, newest first',
      responses: { 200: z.array(BackupSchema), 401: ProblemSchema },
      metadata: bearer,
    },
    getLatestBackup: {
      method: 'GET',
      path: '/api/v1/backups/latest',
      summary: 'The latest successful backup',
      responses: { 200: BackupSchema, 401: ProblemSchema, 404: ProblemSchema },
      metadata: bearer,
    },
    downloadLatestBackup: {
      method: 'GET',
      path: '/api/v1/backups/latest/download',
      summary: 'Download the latest successful backup (application/gzip)',
      description:
        'Streams the .sql.gz. Supports HEAD and a single byte Range (206/416) to resume. ' +
        '503 with Retry-After while the backup storage cannot be read (e.g. S3 unreachable): retry later.',
      responses: { 200: GzipBody, 206: GzipBody, 401: ProblemSchema, 404: ProblemSchema, 416: ProblemSchema, 503: ProblemSchema },
      metadata: download,
    },
    downloadBackup: {
      method: 'GET',
      path: '/api/v1/backups/:id/download',
      pathParams: z.object({ id: z.string() }),
      summary: 'Download a backup by id (application/gzip)',
      description:
        'Streams the .sql.gz. Supports HEAD and a single byte Range (206/416) to resume. ' +
        '503 with Retry-After while the backup storage cannot be read (e.g. S3 unreachable): retry later.',
      responses: { 200: GzipBody, 206: GzipBody, 401: ProblemSchema, 404: ProblemSchema, 416: ProblemSchema, 503: ProblemSchema },
      metadata: download,
    },
    health: {
      method: 'GET',
      path: '/health',
      summary: 'Liveness and readiness (no auth)',
      description: '200 when PostgreSQL accepts a connection and storage is reachable, else 503.',
      responses: { 200: HealthSchema, 503: HealthSchema },
      metadata: open,
    },
    info: {
      method: 'GET',
      path: '/info',
      summary: 'Version, schedule, retention and backup age (no auth)',
      responses: { 200: InfoSchema },
      metadata: open,
    },
  },
  { strictStatusCodes: true },
);

export type ApiContract = typeof apiContract;
