import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { apiContract } from '@db-backup-service/contract';
import { SERVICE_VERSION } from '../version.js';
import { buildOpenApiDocument } from './openapi-document.js';

const root = new URL('../../../', import.meta.url);
type Operation = { operationId?: string; security?: unknown[]; responses: Record<string, { content?: Record<string, unknown> }> };
type Doc = { paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, unknown> } };

describe('openapi.json', () => {
  const committed = readFileSync(new URL('openapi.json', root), 'utf8');
  const doc = JSON.parse(committed) as Doc;
  const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));

  it('is the fresh generation of the contract (run `npm run openapi` when this fails)', () => {
    expect(committed).toBe(`${JSON.stringify(buildOpenApiDocument(SERVICE_VERSION), null, 2)}\n`);
  });

  it('has an operationId for every route of the contract', () => {
    expect(operations.map((o) => o.op.operationId).sort()).toEqual(Object.keys(apiContract).sort());
  });

  it('puts bearer security on exactly the authenticated operations', () => {
    expect(doc.components.securitySchemes).toEqual({ bearerAuth: expect.objectContaining({ type: 'http', scheme: 'bearer' }) });
    const secured = operations.filter((o) => (o.op.security ?? []).length > 0).map((o) => o.path).sort();
    const open = operations.filter((o) => (o.op.security ?? []).length === 0).map((o) => o.path).sort();
    expect(open).toEqual(['/health', '/health/live', '/info']);
    expect(secured.every((p) => p.startsWith('/api/v1/'))).toBe(true);
    expect(secured).toHaveLength(10);
  });

  it('describes downloads (200 and 206) as application/gzip, application/zstd or (encrypted) application/octet-stream binary and errors as problem+json', () => {
    for (const { path, op } of operations) {
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) >= 400) expect(Object.keys(response.content ?? {}), `${path} ${status}`).toEqual(['application/problem+json']);
      }
      if (path.endsWith('/download')) {
        for (const status of ['200', '206']) {
          expect(op.responses[status]?.content, `${path} ${status}`).toEqual({
            'application/gzip': { schema: { type: 'string', format: 'binary' } },
            'application/zstd': { schema: { type: 'string', format: 'binary' } },
            'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
          });
        }
      }
    }
  });
});
