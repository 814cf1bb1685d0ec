import { initContract } from '@ts-rest/core';
import { z } from 'zod';
import { BackupSchema, HealthSchema, InfoSchema, JobConflictSchema, JobSchema, LivenessSchema, PinRequestSchema, ProblemSchema, RetentionPlanSchema } from './schemas.js';

const c = initContract();

/**
 * Route metadata read by the server's auth middleware and by the OpenAPI generator. Every route
 * must carry it: the server refuses to start on a route without `auth` (deny by default), so a
 * public route says `auth: 'none'` on purpose.
 */
export interface RouteMetadata {
  readonly auth: 'bearer' | 'none';
  /** The 200 body is a gzip stream, not JSON. */
  readonly binary?: true;
}

const bearer = { auth: 'bearer' } as const satisfies RouteMetadata;
const open = { auth: 'none' } as const satisfies RouteMetadata;
const download = { auth: 'bearer', binary: true } as const satisfies RouteMetadata;

/**
 * Answers possible on every route: 413 from the body limit (16 KiB; only PUT …/pin takes a body), checked before
 * routing. Routes with a path parameter can also answer 400 (a bad percent-encoding).
 */
const everyRoute = { 413: ProblemSchema } as const;
const withPathParams = { 400: ProblemSchema, ...everyRoute } as const;

/** Body of a download: a gzip stream (`application/gzip`). */
const GzipBody = c.otherResponse({ contentType: 'application/gzip', body: z.unknown() });

export const apiContract = c.router(
  {
    triggerBackup: {
      method: 'POST',
      path: '/api/v1/backups',
      body: c.noBody(),
      summary: 'Trigger a backup now',
      description:
        'Starts a backup job and returns it (202). At most one backup runs at a time: while one runs, the answer is 409 with the running job\'s id. ' +
        '503 (SHUTTING_DOWN) while the service is stopping.',
      responses: { 202: JobSchema, 401: ProblemSchema, 409: JobConflictSchema, 503: ProblemSchema, ...everyRoute },
      metadata: bearer,
    },
    triggerDrill: {
      method: 'POST',
      path: '/api/v1/backups/:id/drill',
      pathParams: z.object({ id: z.string() }),
      body: c.noBody(),
      summary: 'Restore a backup into a scratch database and check it (a drill)',
      description:
        'Starts a drill job of the backup (`latest`: the newest) and returns it (202, kind `drill`, backupId set). The drill restores the stored ' +
        'dump into a scratch database on the drill target (RESTORE_DRILL_TARGET), compares the row and object counts with the backup\'s ' +
        'contents manifest, runs RESTORE_DRILL_QUERY, and drops the scratch database; its result is the job\'s status and the backup\'s `drill`. ' +
        'At most one drill runs at a time (409 with the running drill\'s id); drills and backups do not wait for each other. ' +
        '404 for an unknown backup, 503 (SHUTTING_DOWN) while the service is stopping.',
      responses: { 202: JobSchema, 401: ProblemSchema, 404: ProblemSchema, 409: JobConflictSchema, 503: ProblemSchema, ...withPathParams },
      metadata: bearer,
    },
    getJob: {
      method: 'GET',
      path: '/api/v1/backups/jobs/:jobId',
      pathParams: z.object({ jobId: z.string() }),
      summary: 'Status of a backup or drill job',
      responses: { 200: JobSchema, 401: ProblemSchema, 404: ProblemSchema, ...withPathParams },
      metadata: bearer,
    },
    listBackups: {
      method: 'GET',
      path: '/api/v1/backups',
      summary: 'List backups, newest first',
      responses: { 200: z.array(BackupSchema), 401: ProblemSchema, ...everyRoute },
      metadata: bearer,
    },
    getLatestBackup: {
      method: 'GET',
      path: '/api/v1/backups/latest',
      summary: 'The latest successful backup',
      responses: { 200: BackupSchema, 401: ProblemSchema, 404: ProblemSchema, ...everyRoute },
      metadata: bearer,
    },
    downloadLatestBackup: {
      method: 'GET',
      path: '/api/v1/backups/latest/download',
      summary: 'Download the latest successful backup (application/gzip)',
      description:
        'Streams the backup as stored (.sql.gz, .sql.zst, or its .age ciphertext when encrypted). Supports HEAD and a single byte Range (206/416) to resume. ' +
        '503 with Retry-After while the backup storage cannot be read (e.g. S3 unreachable): retry later.',
      responses: { 200: GzipBody, 206: GzipBody, 401: ProblemSchema, 404: ProblemSchema, 416: ProblemSchema, 503: ProblemSchema, ...everyRoute },
      metadata: download,
    },
    downloadBackup: {
      method: 'GET',
      path: '/api/v1/backups/:id/download',
      pathParams: z.object({ id: z.string() }),
      summary: 'Download a backup by id (application/gzip)',
      description:
        'Streams the backup as stored (.sql.gz, .sql.zst, or its .age ciphertext when encrypted). Supports HEAD and a single byte Range (206/416) to resume. ' +
        '503 with Retry-After while the backup storage cannot be read (e.g. S3 unreachable): retry later.',
      responses: { 200: GzipBody, 206: GzipBody, 401: ProblemSchema, 404: ProblemSchema, 416: ProblemSchema, 503: ProblemSchema, ...withPathParams },
      metadata: download,
    },
    pinBackup: {
      method: 'PUT',
      path: '/api/v1/backups/:id/pin',
      pathParams: z.object({ id: z.string() }),
      body: PinRequestSchema.optional(),
      summary: 'Pin a backup: retention never deletes it',
      description:
        'Stores `<id>.pin.json` beside the backup and returns the backup with `pinned` set. The body is optional: `{"reason": "…"}` says why ' +
        '(it is read as JSON whatever its Content-Type). Pinning a pinned backup replaces its reason and time. 404 for an unknown backup, ' +
        '400 for a body that is not such an object, 503 with Retry-After while the storage cannot be written.',
      responses: { 200: BackupSchema, 401: ProblemSchema, 404: ProblemSchema, 503: ProblemSchema, ...withPathParams },
      metadata: bearer,
    },
    unpinBackup: {
      method: 'DELETE',
      path: '/api/v1/backups/:id/pin',
      pathParams: z.object({ id: z.string() }),
      body: c.noBody(),
      summary: 'Unpin a backup: retention applies to it again',
      description:
        'Deletes `<id>.pin.json` and returns the backup with `pinned` null (also when it was not pinned). 404 for an unknown backup, ' +
        '503 with Retry-After while the storage cannot be written.',
      responses: { 200: BackupSchema, 401: ProblemSchema, 404: ProblemSchema, 503: ProblemSchema, ...withPathParams },
      metadata: bearer,
    },
    retentionPlan: {
      method: 'GET',
      path: '/api/v1/retention',
      summary: 'What retention would delete now, and why each backup is kept',
      description:
        'The plan retention would carry out now over the listed backups: each one, newest first, with `keep` and every rule that keeps it, ' +
        'or `delete` and `expired`. Retention runs after each successful backup (unless RETENTION_DRY_RUN), on a fresh listing.',
      responses: { 200: RetentionPlanSchema, 401: ProblemSchema, ...everyRoute },
      metadata: bearer,
    },
    health: {
      method: 'GET',
      path: '/health',
      summary: 'Readiness: PostgreSQL and storage reachable (no auth)',
      description:
        '200 when PostgreSQL accepts a connection and storage is reachable, else 503. The body names each component UP or DOWN; ' +
        'why one is DOWN is in the service log (the endpoint is unauthenticated).',
      responses: { 200: HealthSchema, 503: HealthSchema, ...everyRoute },
      metadata: open,
    },
    liveness: {
      method: 'GET',
      path: '/health/live',
      summary: 'Liveness: the process answers (no auth)',
      description:
        '200 while the event loop runs; checks nothing else. For liveness probes, and for readiness where the service ' +
        'shares a pod with the database (a storage outage must not take the database out of service).',
      responses: { 200: LivenessSchema, ...everyRoute },
      metadata: open,
    },
    info: {
      method: 'GET',
      path: '/info',
      summary: 'Version, schedule, retention and backup age (no auth)',
      responses: { 200: InfoSchema, ...everyRoute },
      metadata: open,
    },
  },
  { strictStatusCodes: true },
);

export type ApiContract = typeof apiContract;
