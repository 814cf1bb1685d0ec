import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, HeadBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { describe, expect, it } from 'vitest';
import { startS3, useS3 } from './harness/index.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('S3 harness (fauxqs, in memory)', () => {
  const s3 = useS3({ bucket: 'harness-test' });

  it('puts, lists and gets an object through the S3 client', async () => {
    expect(s3.endpoint).toBe(`http://127.0.0.1:${s3.port}`);
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'a/one.txt', Body: 'hello' }));
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'b/two.txt', Body: 'other' }));

    expect(await s3.listKeys()).toEqual(['a/one.txt', 'b/two.txt']);
    expect(await s3.listKeys('a/')).toEqual(['a/one.txt']);
    const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'a/one.txt' }));
    expect(await got.Body?.transformToString()).toBe('hello');
  });

  it('listKeys follows pagination', async () => {
    s3.reset();
    await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `many/${String(i).padStart(2, '0')}`, Body: 'x' })),
      ),
    );
    const keys = await s3.listKeys('many/', { pageSize: 10 }); // 3 pages
    expect(keys).toEqual(Array.from({ length: 25 }, (_, i) => `many/${String(i).padStart(2, '0')}`));
  });

  it('takes a multipart lib-storage Upload of a stream of unknown length', async () => {
    const data = randomBytes(11 * 1024 * 1024 + 123); // 3 parts of 5 MiB, the last one short
    const body = Readable.from((function* () {
      for (let off = 0; off < data.length; off += 256 * 1024) yield data.subarray(off, off + 256 * 1024);
    })());
    const upload = new Upload({
      client: s3.client,
      params: { Bucket: s3.bucket, Key: 'big/dump.sql.gz', Body: body },
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    });
    const parts: number[] = [];
    upload.on('httpUploadProgress', (p) => {
      if (p.part !== undefined) parts.push(p.part);
    });
    await upload.done();
    expect(new Set(parts).size).toBe(3);

    const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'big/dump.sql.gz' }));
    const bytes = await got.Body!.transformToByteArray();
    expect(bytes.length).toBe(data.length);
    expect(sha256(bytes)).toBe(sha256(data));
  });

  it('reset() empties the bucket but keeps it', async () => {
    expect((await s3.listKeys()).length).toBeGreaterThan(0);
    s3.reset();
    expect(await s3.listKeys()).toEqual([]);
    await s3.client.send(new HeadBucketCommand({ Bucket: s3.bucket }));
  });

  it('stop() refuses connections; start() serves the same endpoint again, with the bucket but without the objects', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'before-restart', Body: 'x' }));
    const endpoint = s3.endpoint;
    await s3.stop();
    expect(s3.running).toBe(false);
    await expect(s3.listKeys()).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    await s3.start();
    expect(s3.endpoint).toBe(endpoint);
    await s3.client.send(new HeadBucketCommand({ Bucket: s3.bucket }));
    expect(await s3.listKeys()).toEqual([]); // in-memory: a restart loses objects
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'after-restart', Body: 'y' }));
    expect(await s3.listKeys()).toEqual(['after-restart']);
  });
});

describe('S3 harness with persist: true', () => {
  it('keeps objects across stop()/start()', async () => {
    const s3 = await startS3({ persist: true });
    try {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'kept/one', Body: 'survives' }));
      await s3.stop();
      await s3.start();
      expect(await s3.listKeys()).toEqual(['kept/one']);
      const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'kept/one' }));
      expect(await got.Body?.transformToString()).toBe('survives');
    } finally {
      await s3.destroy();
    }
  });
});
