/** Lifecycle of `createApiServer`: port 0, close hooks, and nothing listening after `close()`. */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { asOfOf, http, startTestApi } from '../utils/testkit.js';

describe('createApiServer lifecycle', () => {
  it('listens on a free port, runs close hooks, then stops accepting', async () => {
    const a = await startTestApi();
    const b = await startTestApi();
    expect(a.url).not.toBe(b.url);
    const calls: string[] = [];
    a.api.onClose(async () => {
      calls.push('hook');
    });
    expect((await http(`${a.url}/health/live`)).status).toBe(200);
    await a.close();
    expect(calls).toEqual(['hook']);
    await expect(fetch(`${a.url}/health/live`)).rejects.toThrow();
    expect((await http(`${b.url}/health/live`)).status).toBe(200);
    await b.close();
  });

  it('lets an in-flight request finish when closing', async () => {
    const t = await startTestApi();
    const body = JSON.stringify({ query: '{ feedStatus { ready } }' });
    const req = request(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
    });
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
    });
    // Half the body: the server has the request but cannot answer yet.
    const arrived = new Promise((resolve) => t.api.server.once('request', resolve));
    req.write(body.slice(0, 10));
    await arrived;
    const closing = t.close();
    req.end(body.slice(10));
    expect(await response).toEqual({
      status: 200,
      text: `{"data":{"feedStatus":{"ready":true}},"extensions":${JSON.stringify(asOfOf(t))}}\n`,
    });
    await closing;
  });
});
