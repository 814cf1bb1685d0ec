import { generateOpenApi } from '@ts-rest/open-api';
import type { AppRoute } from '@ts-rest/core';
import { apiContract, COMPRESSION_FORMATS, ENCRYPTED_CONTENT_TYPE, type RouteMetadata } from '@db-backup-service/contract';

const CONTENT_DISPOSITION = {
  description: 'attachment; filename="<id>" (curl -OJ keeps the backup id as file name)',
  schema: { type: 'string' },
};

/**
 * The OpenAPI 3 document of the API, generated from the contract. ts-rest sets neither
 * per-operation security nor a binary content for downloads: both come from route metadata here.
 */
export function buildOpenApiDocument(version: string): Record<string, unknown> {
  const doc = generateOpenApi(
    apiContract,
    {
      info: {
        title: 'db-backup-service',
        version,
        description: 'PostgreSQL backup sidecar: trigger, list and download pg_dump backups (plain SQL, gzip or zstd compressed).',
        license: { name: 'Apache-2.0' },
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'The service\'s API_TOKEN.' },
        },
      },
    },
    {
      setOperationId: true,
      operationMapper: (operation, appRoute: AppRoute) => {
        const meta = appRoute.metadata as RouteMetadata | undefined;
        const responses = { ...operation.responses } as Record<string, Record<string, unknown>>;
        for (const [status, response] of Object.entries(responses)) {
          if (Number(status) >= 400 && response.content) {
            // Errors are problem+json (RFC 9457).
            const content = response.content as Record<string, unknown>;
            responses[status] = { ...response, content: { 'application/problem+json': content['application/json'] } };
          }
        }
        if (meta?.binary && responses['503']) {
          responses['503'] = {
            ...responses['503'],
            headers: { 'Retry-After': { description: 'Seconds to wait before retrying (the SDK\'s downloadToFile does)', schema: { type: 'integer' } } },
          };
        }
        if (meta?.binary) {
          for (const status of ['200', '206']) {
            responses[status] = {
              description: status === '200' ? 'The whole backup' : 'The requested byte range',
              headers: {
                'Content-Disposition': CONTENT_DISPOSITION,
                'Content-Length': { schema: { type: 'integer' } },
                ETag: { description: 'The SHA-256 of the backup, quoted', schema: { type: 'string' } },
                'Repr-Digest': { description: 'sha-256=:<base64>: (RFC 9530)', schema: { type: 'string' } },
                'Accept-Ranges': { schema: { type: 'string', enum: ['bytes'] } },
                ...(status === '206' ? { 'Content-Range': { schema: { type: 'string' } } } : {}),
              },
              // The id's extension says which: .sql.gz is application/gzip, .sql.zst application/zstd, and an encrypted .age application/octet-stream.
              content: Object.fromEntries(
                [...Object.values(COMPRESSION_FORMATS).map((f) => f.contentType), ENCRYPTED_CONTENT_TYPE].map((type) => [type, { schema: { type: 'string', format: 'binary' } }]),
              ),
            };
          }
        }
        return {
          ...operation,
          responses,
          security: meta?.auth === 'bearer' ? [{ bearerAuth: [] }] : [],
        };
      },
    },
  );
  return doc as unknown as Record<string, unknown>;
}
