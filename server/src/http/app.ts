import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { initServer, createExpressEndpoints, RequestValidationError } from '@ts-rest/express';
import { apiContract, type Backup, type BackupSidecar, type Info, type Job, type JobConflict, type JobKind, type Problem } from '@db-backup-service/contract';
import type { Config } from '../config/config.js';
import { EngineStoppedError, type BackupEngine } from '../engine.js';
import type { StartResult } from '../jobs.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/storage.js';
import { SERVICE_VERSION } from '../version.js';
import { bearerAuth } from './auth.js';
import { DOCS_INIT_SCRIPT, renderDocsPage } from './docs.js';
import { buildOpenApiDocument } from './openapi-document.js';
import { serveDownload, STORAGE_RETRY_AFTER_SECONDS } from './downloads.js';
import type { HealthCheck } from './health.js';
import type { Metrics } from './metrics.js';
import { notFound, problem, PROBLEM_CONTENT_TYPE, sendProblem } from './problem.js';

export interface AppDeps {
  readonly config: Config;
  readonly engine: BackupEngine;
  readonly storage: Storage;
  readonly health: HealthCheck;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The pg_dump clients for /info, as found now (discovery is retried while it fails). */
  readonly pgDump: () => Info['pgDump'];
}

/** Only PUT …/pin takes a body, of a few hundred bytes; anything larger than this is refused before it is read. */
const MAX_BODY_BYTES = 16 * 1024;

export function createApp(deps: AppDeps): express.Express {
  const { config, engine, logger, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(accessLog(deps));
  app.use(limitBody);

  const s = initServer();
  const router = s.router(apiContract, {
    triggerBackup: async ({ res }) => startJob(res, 'backup', () => engine.trigger('api')),
    triggerDrill: async ({ params, res }) => {
      const answer = startJob(res, 'drill', () => engine.triggerDrill(params.id, 'api'));
      if (answer !== null) return answer;
      res.type(PROBLEM_CONTENT_TYPE);
      return { status: 404, body: notFound(params.id === 'latest' ? 'no successful backup yet' : 'no such backup') };
    },
    getJob: async ({ params, res }) => {
      const job = engine.jobs.get(params.jobId);
      if (!job) {
        res.type(PROBLEM_CONTENT_TYPE);
        return { status: 404, body: notFound('no such job (jobs are kept in memory: the newest 100, until restart)') };
      }
      return { status: 200, body: job };
    },
    listBackups: async ({ res }) => {
      // The index keeps the serialised list; sent as is (a stream body is piped by ts-rest, where
      // an object would be serialised again on every request).
      const json = engine.index.listJson();
      res.type('application/json').set('Content-Length', String(json.length));
      return { status: 200, body: Readable.from([json], { objectMode: false }) as unknown as Backup[] };
    },
    getLatestBackup: async ({ res }) => {
      const latest = engine.index.latest();
      if (!latest) {
        res.type(PROBLEM_CONTENT_TYPE);
        return { status: 404, body: notFound('no successful backup yet') };
      }
      return { status: 200, body: engine.index.toPublic(latest) };
    },
    // Before `:id/download`, or "latest" would be taken for an id (ts-rest registers in key order).
    downloadLatestBackup: async ({ req, res }) => serveDownload({ ...deps, index: engine.index }, 'latest', req, res),
    downloadBackup: async ({ params, req, res }) => serveDownload({ ...deps, index: engine.index }, { id: params.id }, req, res),
    pinBackup: {
      // The one route with a body, parsed after the bearer check (global middleware runs first).
      // Read as JSON whatever its Content-Type: `curl -d '{"reason":"…"}'` sends a form type, and
      // its reason must not be dropped silently.
      middleware: [express.json({ type: () => true, limit: MAX_BODY_BYTES })],
      handler: async ({ params, body, res }) => pinAnswer(res, deps, params.id, () => engine.pin(params.id, body?.reason ?? null)),
    },
    unpinBackup: async ({ params, res }) => pinAnswer(res, deps, params.id, () => engine.unpin(params.id)),
    retentionPlan: async () => {
      const evaluatedAt = new Date();
      return { status: 200, body: { policy: config.retention, evaluatedAt: evaluatedAt.toISOString(), backups: engine.retentionPlan(evaluatedAt) } };
    },
    health: async () => {
      const health = await deps.health.get();
      return { status: health.status === 'UP' ? 200 : 503, body: health };
    },
    // Answers as long as the event loop runs, which is all a liveness probe should ask: restarting
    // the service does not bring back a database or a bucket. No check here, on purpose.
    liveness: async () => ({ status: 200, body: { status: 'UP' as const } }),
    info: async () => ({ status: 200, body: info(deps) }),
  });

  createExpressEndpoints(apiContract, router, app, {
    globalMiddleware: [bearerAuth(apiContract, config.apiToken)],
    logInitialization: false,
    responseValidation: false,
    jsonQuery: false,
    requestValidationErrorHandler: (err, _req, res) => {
      const part = err.pathParams ? 'path' : err.query ? 'query' : err.headers ? 'headers' : 'body';
      // A body's first problem is named (e.g. a pin reason over 500 characters): the caller wrote it.
      const issue = part === 'body' ? err.body?.issues[0] : undefined;
      const why = issue ? `: ${issue.path.join('.') || 'body'}: ${issue.message}` : '';
      sendProblem(res, problem(400, 'Bad Request', `invalid request ${part}${why}`, 'INVALID_REQUEST'));
    },
  });

  const openApi = JSON.stringify(buildOpenApiDocument(SERVICE_VERSION), null, 2);
  app.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(openApi);
  });
  const swaggerDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  app.use('/docs/assets', express.static(swaggerDir, { index: false, fallthrough: false }));
  // One pattern for /docs and /docs/ (routing is not strict), so the metrics label is "/docs".
  app.get('/docs', (_req, res) => {
    res.type('html').send(renderDocsPage());
  });
  app.get('/docs/init.js', (_req, res) => {
    res.type('application/javascript').send(DOCS_INIT_SCRIPT);
  });
  app.get('/metrics', async (_req, res, next) => {
    try {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    } catch (error) {
      next(error);
    }
  });

  app.use((req, res) => sendProblem(res, notFound(`no route for ${req.method} ${req.path}`)));
  app.use(errorHandler(logger));
  return app;
}

function info({ config, engine, storage, pgDump }: AppDeps): Info {
  const latest = engine.index.latest();
  const verified = engine.index.lastVerified();
  const ageSeconds = (backup: { createdAt: string }) => Math.max(0, Math.floor((Date.now() - Date.parse(backup.createdAt)) / 1000));
  return {
    service: { name: 'db-backup-service', version: SERVICE_VERSION },
    pgDump: pgDump(),
    retention: config.retention,
    schedule: {
      interval: config.schedule.intervalIso,
      intervalSeconds: Math.round(config.schedule.intervalMs / 1000),
      cron: config.schedule.cron,
      nextRunAt: engine.scheduler.nextRunAt()?.toISOString() ?? null,
    },
    storage: { backend: storage.backend },
    encryption: config.backup.encryption,
    drill: {
      mode: config.drill.mode,
      target: config.drill.target,
      nextRunAt: engine.drillScheduler?.nextRunAt()?.toISOString() ?? null,
      last: engine.index.lastDrill(),
    },
    backup: {
      lastSuccessfulBackupAgeSeconds: latest ? ageSeconds(latest) : null,
      lastSuccessfulBackupId: latest?.id ?? null,
      lastVerifiedBackupAgeSeconds: verified ? ageSeconds(verified) : null,
      lastVerifiedBackupId: verified?.id ?? null,
      foreignBackups: engine.index.foreignCount,
    },
  };
}

const limitBody: RequestHandler = (req, res, next) => {
  const length = Number(req.headers['content-length'] ?? 0);
  // A chunked body has no length to check up front, and none is needed: refused on every method
  // (a GET's chunked body that never ended used to hold its keep-alive connection open).
  if (length > MAX_BODY_BYTES || req.headers['transfer-encoding'] !== undefined) {
    // Tell the client we will not read it, and close: the body is not drained.
    res.set('Connection', 'close');
    return sendProblem(res, problem(413, 'Content Too Large', `request bodies are limited to ${MAX_BODY_BYTES} bytes`, 'BODY_TOO_LARGE'));
  }
  next();
};

/** Probes and scrapes, every few seconds all day: logged at debug, or they drown the rest. */
const PROBE_ROUTES: ReadonlySet<string> = new Set([apiContract.health.path, apiContract.liveness.path, '/metrics']);

function accessLog({ logger, metrics }: AppDeps): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // The contract's route pattern, never the raw URL: ids and junk stay out of metric labels.
      const route = String((req as { tsRestRoute?: { path: string } }).tsRestRoute?.path ?? (req.route as { path?: string } | undefined)?.path ?? 'unmatched');
      metrics.observeRequest(req.method, route, res.statusCode, seconds);
      logger.log(PROBE_ROUTES.has(route) ? 'debug' : 'info', 'http request', {
        method: req.method,
        route,
        status: res.statusCode,
        durationMs: Math.round(seconds * 1000),
        ...(res.writableFinished ? {} : { aborted: true }),
      });
    });
    next();
  };
}

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const status = (error as { status?: unknown }).status;
    if (error instanceof RequestValidationError || (typeof status === 'number' && status >= 400 && status < 500)) {
      // e.g. invalid percent-encoding in the path (express raises a 400 URIError).
      const code = typeof status === 'number' ? status : 400;
      // body-parser's type for a body that is not JSON (only a pin takes one).
      const notJson = (error as { type?: unknown }).type === 'entity.parse.failed';
      const detail = code === 404 ? 'not found' : notJson ? 'the request body is not valid JSON (a pin takes {"reason": "…"} or no body)' : 'the request could not be parsed';
      return sendProblem(res, problem(code, STATUS_CODES[code] ?? 'Bad Request', detail, code === 404 ? 'NOT_FOUND' : 'INVALID_REQUEST'));
    }
    logger.error('request failed', { method: req.method, path: req.path, error: (error as Error).message });
    sendProblem(res, problem(500, 'Internal Server Error', 'internal error', 'INTERNAL'));
  };
}

type PinAnswer = { status: 200; body: Backup } | { status: 404 | 503; body: Problem };

/** How pin and unpin answer: the backup as it is now, 404 for no such backup, 503 while storage cannot be written. */
async function pinAnswer(res: express.Response, { engine, logger }: AppDeps, id: string, change: () => Promise<BackupSidecar | null>): Promise<PinAnswer> {
  let backup: BackupSidecar | null;
  try {
    backup = await change();
  } catch (error) {
    logger.error('could not change a pin: storage failed', { backupId: id, error: (error as Error).message });
    res.type(PROBLEM_CONTENT_TYPE).set('Retry-After', String(STORAGE_RETRY_AFTER_SECONDS));
    return { status: 503, body: problem(503, 'Service Unavailable', 'the backup storage cannot be written right now; retry later', 'STORAGE_UNAVAILABLE') };
  }
  if (backup === null) {
    res.type(PROBLEM_CONTENT_TYPE);
    return { status: 404, body: notFound('no such backup (pin a listed backup by its id)') };
  }
  return { status: 200, body: engine.index.toPublic(backup) };
}

type JobAnswer = { status: 202; body: Job } | { status: 409; body: JobConflict } | { status: 503; body: Problem };

/**
 * How both job-starting routes answer: 202 with the new job (and its Location), 409 with the
 * running job of that kind, 503 while the service stops; null when `start` found nothing to run.
 */
function startJob(res: express.Response, kind: JobKind, start: () => StartResult): JobAnswer;
function startJob(res: express.Response, kind: JobKind, start: () => StartResult | null): JobAnswer | null;
function startJob(res: express.Response, kind: JobKind, start: () => StartResult | null): JobAnswer | null {
  let result: StartResult | null;
  try {
    result = start();
  } catch (error) {
    if (!(error instanceof EngineStoppedError)) throw error;
    res.type(PROBLEM_CONTENT_TYPE);
    return { status: 503, body: problem(503, 'Service Unavailable', error.message, error.code) };
  }
  if (result === null) return null;
  if (!result.started) {
    res.type(PROBLEM_CONTENT_TYPE);
    const { jobId } = result.running;
    const code = kind === 'backup' ? 'BACKUP_RUNNING' : 'DRILL_RUNNING';
    return { status: 409, body: { ...problem(409, 'Conflict', `a ${kind} is already running (job ${jobId})`, code), status: 409 as const, jobId } };
  }
  res.location(`/api/v1/backups/jobs/${result.job.jobId}`);
  return { status: 202, body: result.job };
}
