// The admin API's write routes (and GET /config, GET /openapi.json), over a ConfigWriter and the
// daemon's runtime controls. Every route here is listed in openapi.ts. Bodies are read (and
// checked for JSON) before a write joins the writer's queue, so a slow client never holds it.
import type { ApplyResponse, DrainResponse, ReloadResponse } from './contract.ts';
import { addTarget, deleteApp, editableDocument, formatConfig, keepSchemaRef, putApp, removeTarget, targetAddress } from './config-edit.ts';
import type { ConfigWriter } from './config-writer.ts';
import { openApiDocument } from './openapi.ts';
import { Reply } from './router.ts';
import type { Request, Route } from './router.ts';

export interface AdminBackend {
  readonly writer: ConfigWriter;
  /** Operator drain of one target of one app (runtime only); throws AdminError 404 for an unknown app or target. */
  setDrain(app: string, target: string, drain: boolean): void;
  /** As SIGHUP: re-read the config and apply it. */
  reload(): Promise<ReloadResponse>;
}

export function adminRoutes(b: AdminBackend): Route[] {
  const write = (req: Request, what: string, edit: Parameters<ConfigWriter['write']>[1]): Promise<ApplyResponse> => b.writer.write(what, edit, header(req, 'if-match'));
  const drain = (on: boolean) => (req: Request): DrainResponse => {
    const target = targetAddress(req.params.address);
    b.setDrain(req.params.name!, target, on);
    return { app: req.params.name!, target, drain: on };
  };
  return [
    { method: 'GET', path: '/config', handler: async () => {
      const { bytes, etag } = await b.writer.read();
      return new Reply(bytes, 200, { 'content-type': 'application/json', etag });
    } },
    { method: 'PUT', path: '/config', auth: true, handler: async (req) => {
      const body = await req.json();
      return write(req, 'PUT /config', (stored) => formatConfig(keepSchemaRef(body, stored.value)));
    } },
    { method: 'PUT', path: '/apps/:name', auth: true, handler: async (req) => {
      const body = await req.json();
      return write(req, `PUT /apps/${req.params.name}`, (stored) => formatConfig(putApp(editableDocument(stored.value), req.params.name!, body)));
    } },
    { method: 'DELETE', path: '/apps/:name', auth: true, handler: (req) =>
      write(req, `DELETE /apps/${req.params.name}`, (stored) => formatConfig(deleteApp(editableDocument(stored.value), req.params.name!))) },
    { method: 'POST', path: '/apps/:name/targets', auth: true, handler: async (req) => {
      const body = await req.json();
      return write(req, `POST /apps/${req.params.name}/targets`, (stored) => formatConfig(addTarget(editableDocument(stored.value), req.params.name!, body)));
    } },
    { method: 'DELETE', path: '/apps/:name/targets/:address', auth: true, handler: (req) =>
      write(req, `DELETE /apps/${req.params.name}/targets/${req.params.address}`, (stored) => formatConfig(removeTarget(editableDocument(stored.value), req.params.name!, req.params.address!))) },
    { method: 'POST', path: '/apps/:name/targets/:address/drain', auth: true, handler: drain(true) },
    { method: 'POST', path: '/apps/:name/targets/:address/enable', auth: true, handler: drain(false) },
    { method: 'POST', path: '/reload', auth: true, handler: () => b.reload() },
    { method: 'GET', path: '/openapi.json', handler: () => openApiDocument() },
  ];
}

function header(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}
