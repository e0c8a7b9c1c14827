// The dashboard's static files, served by the admin endpoint: GET / (the page) and
// GET /dashboard.js (its script). No build step, no framework, nothing from the network: the page
// polls GET /stats once a second and draws its charts as inline SVG.
// Read once at start: the files ship with the daemon and do not change while it runs.
import { readFileSync } from 'node:fs';
import { RawBody } from '../admin-server.ts';

export function dashboardRoutes(): Record<string, () => RawBody> {
  const page = new RawBody('text/html; charset=utf-8', readFileSync(new URL('./index.html', import.meta.url)));
  const script = new RawBody('text/javascript; charset=utf-8', readFileSync(new URL('./dashboard.js', import.meta.url)));
  return { '/': () => page, '/dashboard.js': () => script };
}
