import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { IMAGE_RUNTIME_ENV } from './harness/index.js';

describe('the image runtime settings the tests and benchmarks use', () => {
  it('are the ones docker/Dockerfile sets', async () => {
    const dockerfile = await readFile(new URL('../docker/Dockerfile', import.meta.url), 'utf8');
    for (const [name, value] of Object.entries(IMAGE_RUNTIME_ENV)) {
      expect(dockerfile, `docker/Dockerfile should set ${name}=${value}`).toMatch(new RegExp(`^ENV[^\\n]*(?:\\\\\\n[^\\n]*)*\\b${name}=${value}\\b`, 'm'));
    }
  });
});
