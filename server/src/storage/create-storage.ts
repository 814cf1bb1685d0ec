import type { StorageConfig } from '../config/config.js';
import { LocalStorage } from './local-storage.js';
import type { S3StorageEvent } from './s3-storage.js';
import type { Storage } from './storage.js';

/**
 * The configured backend. A local directory is checked here (missing, not a directory, not
 * writable: a clear StorageError at start-up); S3 is not contacted, since a bucket that is briefly
 * unreachable should show up in /health rather than stop the service (call `check()` for that).
 */
export async function createStorage(config: StorageConfig, options: { onS3Event?: (event: S3StorageEvent) => void } = {}): Promise<Storage> {
  switch (config.backend) {
    case 'local':
      return LocalStorage.open(config.dir);
    case 's3': {
      // Loaded only for this backend: the AWS SDK is most of the service's code, and with local
      // storage it would only sit in memory (RSS) and make every garbage collection longer.
      const { S3Storage } = await import('./s3-storage.js');
      return new S3Storage({
        bucket: config.bucket,
        prefix: config.prefix,
        endpoint: config.endpoint,
        region: config.region,
        credentials: config.credentials,
        connectTimeoutMs: config.connectTimeoutMs,
        requestTimeoutMs: config.requestTimeoutMs,
        partSizeBytes: config.partSizeBytes,
        ...(options.onS3Event ? { onEvent: options.onS3Event } : {}),
      });
    }
  }
}
