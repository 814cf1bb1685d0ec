// Where a test's backups live, on either backend, and how a test reaches them behind the
// service's back: to plant objects another service (or the reference service) would have written,
// and to see what the service left.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Harness } from './s3.js';

export type StorageBackend = 'local' | 's3';

export interface StorageLocation {
  readonly backend: StorageBackend;
  /** The service's storage settings for this location (STORAGE_BACKEND and its variables). */
  readonly env: Record<string, string>;
  read(name: string): Promise<Buffer>;
  write(name: string, data: Buffer): Promise<void>;
  /** Every object name in the location, sorted. */
  names(): Promise<string[]>;
  /**
   * Sets an object's modification time (what clean-up reads as its age). Only a local file's can
   * be set; on S3 (lastModified is the server's) nothing is done and it resolves false.
   */
  backdate(name: string, at: Date): Promise<boolean>;
}

/**
 * A fresh, empty location: a new directory under `dir` (local), or a new random prefix in the
 * emulator's bucket (s3; `s3` is required then). `tag` names it, for a reader of leftovers.
 */
export async function storageLocation(backend: StorageBackend, opts: { tag: string; dir: string; s3?: S3Harness }): Promise<StorageLocation> {
  if (backend === 'local') {
    const dir = await mkdtemp(join(opts.dir, `${opts.tag}-`));
    return {
      backend,
      env: { STORAGE_BACKEND: 'local', BACKUP_LOCAL_DIR: dir },
      read: (name) => readFile(join(dir, name)),
      write: (name, data) => writeFile(join(dir, name), data),
      names: async () => (await readdir(dir)).sort(),
      backdate: async (name, at) => {
        await utimes(join(dir, name), at, at);
        return true;
      },
    };
  }
  const s3 = opts.s3;
  if (!s3) throw new Error('storageLocation: the s3 backend needs the S3 harness (opts.s3)');
  const prefix = `${opts.tag}-${randomBytes(4).toString('hex')}`;
  return {
    backend,
    env: {
      STORAGE_BACKEND: 's3', S3_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, S3_PREFIX: prefix, AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    },
    async read(name) {
      const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${name}` }));
      return Buffer.from(await out.Body!.transformToByteArray());
    },
    write: async (name, data) => {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${name}`, Body: data }));
    },
    names: async () => (await s3.listKeys(`${prefix}/`)).map((k) => k.slice(prefix.length + 1)).sort(),
    backdate: async () => false,
  };
}
