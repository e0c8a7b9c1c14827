// Test support for the admin API: one request to a test daemon's admin endpoint, with the test token.
import type { TestDaemon } from '../testing.ts';

export const TOKEN = 'test-admin-token-0123456789abcdef';

export interface Call {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

export async function call(d: TestDaemon, method: string, path: string, options: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {}): Promise<Call> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  const res = await fetch(`http://127.0.0.1:${d.adminPort}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // text/plain
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

