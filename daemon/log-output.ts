// Where logs go. Every process writes pino NDJSON; when the daemon's stdout is a terminal (and
// FPROXY_LOG_FORMAT is not "json") the daemon turns its own lines and its listeners' into
// human-readable text. Pretty-printing stays in the daemon, in-process (a pino-pretty stream, not
// a transport thread): listeners never load it (with pino 10, a pino-pretty transport runs a
// worker thread and adds ~17 MB RSS to each process that has one).
import type { Readable } from 'node:stream';
import { PinoPretty } from 'pino-pretty';

export function wantsPretty(env: NodeJS.ProcessEnv = process.env): boolean {
  return process.stdout.isTTY === true && env.FPROXY_LOG_FORMAT !== 'json';
}

function prettyStream(): NodeJS.WritableStream {
  return PinoPretty({
    colorize: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'hostname,pid,proc,app,gen,worker',
    messageFormat: '{proc}{if app} {app}{end}{if gen} gen {gen}{end}{if worker}/{worker}{end}: {msg}',
    destination: 1,
    sync: true,
  });
}

/** The daemon's own log destination: pretty on a terminal, else undefined (pino's stdout). */
export function daemonLogDestination(env: NodeJS.ProcessEnv = process.env): NodeJS.WritableStream | undefined {
  return wantsPretty(env) ? prettyStream() : undefined;
}

/** A listener's piped stdout, pretty-printed (one stream per child so lines never interleave). */
export function prettyChildOutput(out: Readable): void {
  out.pipe(prettyStream());
}
