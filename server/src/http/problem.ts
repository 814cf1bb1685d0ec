import type { Response } from 'express';
import type { Problem } from '@db-backup-service/contract';

/** An RFC 9457 problem body; `code` is our stable machine-readable error code. */
export function problem(status: number, title: string, detail?: string, code?: string): Problem {
  return {
    type: code ? `urn:db-backup-service:${code}` : 'about:blank',
    title,
    status,
    ...(detail === undefined ? {} : { detail }),
    ...(code === undefined ? {} : { code }),
  };
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Sends a problem outside ts-rest (middleware, fallbacks). */
export function sendProblem(res: Response, body: Problem, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(body.status).set(headers).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}

export const notFound = (detail: string) => problem(404, 'Not Found', detail, 'NOT_FOUND');
