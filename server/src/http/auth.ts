import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { NextFunction, Response } from 'express';
import { isAppRoute, type AppRoute, type AppRouter } from '@ts-rest/core';
import type { RouteMetadata } from '@db-backup-service/contract';
import { problem, sendProblem } from './problem.js';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** The part of a ts-rest request the check reads (ts-rest sets `tsRestRoute` before middleware). */
interface RoutedRequest {
  readonly headers: IncomingHttpHeaders;
  readonly tsRestRoute?: { readonly metadata?: unknown };
}

const authOf = (route: { readonly metadata?: unknown }) => (route.metadata as Partial<RouteMetadata> | undefined)?.auth;

/**
 * Bearer-token check driven by the contract's route metadata, deny by default: only a route that
 * says `auth: 'none'` is served without the token. Building it refuses a contract with a route that
 * declares neither 'bearer' nor 'none', so a forgotten `metadata` stops the service at start instead
 * of publishing the route. Both token sides are hashed first, so the comparison is constant-time
 * whatever the lengths. The token is never logged.
 */
export function bearerAuth(contract: AppRouter, apiToken: string): (req: RoutedRequest, res: Response, next: NextFunction) => void {
  const undeclared = routesOf(contract)
    .filter(([, route]) => authOf(route) !== 'bearer' && authOf(route) !== 'none')
    .map(([name, route]) => `${name} (${route.method} ${route.path})`);
  if (undeclared.length > 0) {
    throw new Error(`routes without metadata.auth ('bearer' or 'none'): ${undeclared.join(', ')}`);
  }
  const expected = digest(apiToken);
  return (req, res, next) => {
    if (req.tsRestRoute && authOf(req.tsRestRoute) === 'none') return next();
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

/** Every route of a (possibly nested) contract, named by its key path. */
function routesOf(router: AppRouter, prefix = ''): [string, AppRoute][] {
  return Object.entries(router).flatMap(([key, value]): [string, AppRoute][] =>
    isAppRoute(value) ? [[`${prefix}${key}`, value]] : routesOf(value, `${prefix}${key}.`),
  );
}
