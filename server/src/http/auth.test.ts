import { once } from 'node:events';
import { createServer } from 'node:http';
import express from 'express';
import { initContract } from '@ts-rest/core';
import { createExpressEndpoints, initServer } from '@ts-rest/express';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { apiContract } from '@db-backup-service/contract';
import { bearerAuth } from './auth.js';

const c = initContract();
const TOKEN = 'test-token-0123456789abcdef0123456789abcdef';

describe('bearerAuth: deny by default', () => {
  it('refuses, at start, a contract with a route that declares no auth, naming the route', () => {
    const forgotten = c.router({
      listThings: { method: 'GET', path: '/api/v1/things', responses: { 200: z.object({}) }, metadata: { auth: 'bearer' } },
      deleteThings: { method: 'DELETE', path: '/api/v1/things', body: c.noBody(), responses: { 204: c.noBody() } },
    });
    expect(() => bearerAuth(forgotten, TOKEN)).toThrow(/metadata\.auth.*: deleteThings \(DELETE \/api\/v1\/things\)$/);
    const misspelt = c.router({
      thing: { method: 'GET', path: '/api/v1/thing', responses: { 200: z.object({}) }, metadata: { auth: 'Bearer' } },
    });
    expect(() => bearerAuth(misspelt, TOKEN)).toThrow(/thing \(GET \/api\/v1\/thing\)/);
  });

  it('accepts the service contract, and a route that says auth: none explicitly (served without a token)', async () => {
    expect(() => bearerAuth(apiContract, TOKEN)).not.toThrow();
    const contract = c.router({
      open: { method: 'GET', path: '/api/v1/open', responses: { 200: z.object({ ok: z.boolean() }) }, metadata: { auth: 'none' } },
      closed: { method: 'GET', path: '/api/v1/closed', responses: { 200: z.object({ ok: z.boolean() }) }, metadata: { auth: 'bearer' } },
    });
    const s = initServer();
    const app = express();
    createExpressEndpoints(
      contract,
      s.router(contract, { open: async () => ({ status: 200, body: { ok: true } }), closed: async () => ({ status: 200, body: { ok: true } }) }),
      app,
      { globalMiddleware: [bearerAuth(contract, TOKEN)], logInitialization: false },
    );
    const server = createServer(app).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      expect((await fetch(`${url}/api/v1/open`)).status).toBe(200);
      expect((await fetch(`${url}/api/v1/closed`)).status).toBe(401);
      expect((await fetch(`${url}/api/v1/closed`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    } finally {
      server.close();
    }
  });
});
