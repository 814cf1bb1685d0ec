import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { NextFunction, Response } from 'express';
import type { RouteMetadata } from '@db-backup-service/contract';
import { problem, sendProblem } from './problem.js';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * Bearer-token check for routes whose contract metadata says `auth: 'bearer'`. Both sides are
 * hashed first so the comparison is constant-time whatever the lengths. The token is never logged.
 */
/** The part of a ts-rest request the check reads (ts-rest sets `tsRestRoute` before middleware). */
interface RoutedRequest {
  readonly headers: IncomingHttpHeaders;
  readonly tsRestRoute?: { readonly metadata?: unknown };
}

export function bearerAuth(apiToken: string): (req: RoutedRequest, res: Response, next: NextFunction) => void {
  const expected = digest(apiToken);
  return (req, res, next) => {
    if ((req.tsRestRoute?.metadata as RouteMetadata | undefined)?.auth !== 'bearer') return next();
    const header = req.headers.authorization ?? '';
    const match = /^Bearer +([^\s]+) *$/i.exec(header);
    const ok = match !== null && timingSafeEqual(digest(match[1] ?? ''), expected);
    if (ok) return next();
    const detail = header === '' ? 'missing Authorization header' : match === null ? 'malformed Authorization header (expected "Bearer <token>")' : 'invalid token';
    sendProblem(res, problem(401, 'Unauthorized', detail, 'UNAUTHORIZED'), {
      'WWW-Authenticate': `Bearer realm="db-backup-service"${match ? ', error="invalid_token"' : ''}`,
    });
  };
}
