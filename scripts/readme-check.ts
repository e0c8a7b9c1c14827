// readme-check: runs the README's commands as written, from the repository directory, and checks
// what they print against what the README shows. The README marks each checked block with an HTML
// comment just above it (invisible when rendered):
//   <!-- readme-check: run [exit=N] -->            run the whole block; it must exit N (default 0)
//   <!-- readme-check: session [exit=N] [also="LINE"]… -->
//                                                  each "$ CMD" line is run; the lines under it are
//                                                  its expected output (numbers may differ; an
//                                                  `also` line may stand in for any expected line)
//   <!-- readme-check: terminal ready=HOST:PORT,… --> start the block in the background, in its own
//                                                  process group (a terminal); wait for the ports.
//                                                  Several may run at once (an example in terminals)
//   <!-- readme-check: stop -->                    Ctrl-C the terminal started last (SIGINT to its
//                                                  group); it must exit by itself, leave no process
//                                                  and free its ports. Terminals still running at the
//                                                  end are stopped so, last started first
//   <!-- readme-check: skip reason="…" -->         not run, the reason is printed
// Usage: scripts/readme-check [--times N] [README]. Exit 1 when any step failed in any round.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Step =
  | { kind: 'run'; line: number; script: string; exit: number }
  | { kind: 'session'; line: number; commands: { command: string; expected: string[] }[]; exit: number; also: string[] }
  | { kind: 'terminal'; line: number; script: string; ready: { host: string; port: number }[] }
  | { kind: 'stop'; line: number }
  | { kind: 'skip'; line: number; reason: string; script: string };

const MARKER = /^<!-- readme-check: (\w+)(.*?)\s*-->$/;

/** key=value and key="value with spaces" pairs; a key may repeat. */
export function parseOptions(text: string): Map<string, string[]> {
  const options = new Map<string, string[]>();
  for (const m of text.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))/g)) {
    const value = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
    options.set(m[1]!, [...(options.get(m[1]!) ?? []), value]);
  }
  return options;
}

/** The marked steps of a README, in order. Throws on a marker without its block or an unknown kind. */
export function parseReadme(text: string): Step[] {
  const lines = text.split('\n');
  const steps: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]!.trim());
    if (!m) continue;
    const kind = m[1]!;
    const options = parseOptions(m[2]!);
    const line = i + 1;
    if (kind === 'stop') {
      steps.push({ kind, line });
      continue;
    }
    const open = lines.findIndex((l, j) => j > i && l.startsWith('```'));
    const close = open < 0 ? -1 : lines.findIndex((l, j) => j > open && l.startsWith('```'));
    if (open !== i + 1 || close < 0) throw new Error(`README line ${line}: "${kind}" marker must sit right above a fenced block`);
    const block = lines.slice(open + 1, close);
    const script = block.join('\n');
    const exit = Number(options.get('exit')?.[0] ?? 0);
    if (kind === 'run') steps.push({ kind, line, script, exit });
    else if (kind === 'terminal') {
      const ready = (options.get('ready')?.[0] ?? '').split(',').filter(Boolean).map((a) => {
        const colon = a.lastIndexOf(':');
        return { host: a.slice(0, colon), port: Number(a.slice(colon + 1)) };
      });
      steps.push({ kind, line, script, ready });
    } else if (kind === 'session') steps.push({ kind, line, commands: parseSession(block), exit, also: options.get('also') ?? [] });
    else if (kind === 'skip') steps.push({ kind, line, reason: options.get('reason')?.[0] ?? '(no reason given)', script });
    else throw new Error(`README line ${line}: unknown readme-check kind "${kind}"`);
    i = close;
  }
  return steps;
}

/** "$ cmd" lines and the output lines under each. */
export function parseSession(block: readonly string[]): { command: string; expected: string[] }[] {
  const commands: { command: string; expected: string[] }[] = [];
  for (const l of block) {
    if (l.startsWith('$ ')) commands.push({ command: l.slice(2), expected: [] });
    else if (commands.length > 0) commands.at(-1)!.expected.push(l);
  }
  return commands;
}

/** Numbers (counts, times, pids, dates' digits) vary from run to run; the words may not. */
export function normalize(line: string): string {
  return line.replace(/\d+(\.\d+)?/g, '#').trimEnd();
}

/** Which expected line does not match (by index), or -1 when the output matches. */
export function compareOutput(expected: readonly string[], actual: readonly string[], also: readonly string[] = []): number {
  const want = expected.map(normalize);
  const got = actual.map(normalize);
  while (got.length > 0 && got.at(-1) === '') got.pop();
  const alternatives = new Set(also.map(normalize));
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    if (want[i] === got[i]) continue;
    if (got[i] !== undefined && alternatives.has(got[i]!)) continue;
    return i;
  }
  return -1;
}

// ---- running ----------------------------------------------------------------------------------

const REPO = fileURLToPath(new URL('..', import.meta.url));
const COMMAND_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 180_000; // the first `make run` installs dependencies
const STOP_TIMEOUT_MS = 60_000;

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const groups = new Set<number>();

function bash(script: string, detached: boolean): ChildProcess {
  const child = spawn('bash', ['-c', script], { cwd: REPO, detached, stdio: ['ignore', 'pipe', 'pipe'] });
  if (detached && child.pid) groups.add(child.pid);
  return child;
}

function runScript(script: string): Promise<Result> {
  return new Promise((resolve) => {
    // Its own group, so a timeout kills the whole pipeline.
    const child = bash(script, true);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid!, 'SIGKILL');
    }, COMMAND_TIMEOUT_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      groups.delete(child.pid!);
      // Background jobs a block started and left behind are a failure of the example, not ours to keep.
      const leftover = groupAlive(child.pid!);
      if (leftover) killGroup(child.pid!, 'SIGKILL');
      resolve({ code, signal, stdout, stderr: stderr + (leftover ? '\n[readme-check: the block left processes running]' : ''), timedOut });
    });
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {}
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function until(cond: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

interface Outcome {
  step: string;
  ok: boolean;
  detail?: string;
}

interface Terminal {
  child: ChildProcess;
  ready: { host: string; port: number }[];
  output: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function runRound(steps: readonly Step[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  const terminals: Terminal[] = [];
  for (const step of steps) {
    const where = `README:${step.line}`;
    if (step.kind === 'skip') {
      outcomes.push({ step: `${where} skip: ${firstLine(step.script)}`, ok: true, detail: `skipped: ${step.reason}` });
    } else if (step.kind === 'run') {
      const r = await runScript(step.script);
      const ok = !r.timedOut && r.code === step.exit && !r.stderr.includes('[readme-check:');
      outcomes.push({ step: `${where} run: ${firstLine(step.script)}`, ok, detail: ok ? undefined : describe(r, step.exit) });
    } else if (step.kind === 'session') {
      for (const { command, expected } of step.commands) {
        const r = await runScript(command);
        const actual = (r.stdout + r.stderr).split('\n');
        const mismatch = compareOutput(expected, actual, step.also);
        const ok = !r.timedOut && r.code === step.exit && mismatch < 0;
        let detail: string | undefined;
        if (!ok) {
          detail = r.timedOut || r.code !== step.exit ? describe(r, step.exit) : `line ${mismatch + 1}: expected ${JSON.stringify(expected[mismatch] ?? '(end)')}, got ${JSON.stringify(actual[mismatch] ?? '(end)')}`;
        }
        outcomes.push({ step: `${where} $ ${command}`, ok, detail });
      }
    } else if (step.kind === 'terminal') {
      const busy = [];
      for (const a of step.ready) if (await accepts(a.host, a.port)) busy.push(`${a.host}:${a.port}`);
      if (busy.length > 0) throw new Error(`${where}: ${busy.join(', ')} already answer before the example starts: stop what holds them first`);
      const child = bash(step.script, true);
      const t: Terminal = { child, ready: step.ready, output: '', exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal }))) };
      child.stdout!.on('data', (d: Buffer) => (t.output = (t.output + d.toString()).slice(-20_000)));
      child.stderr!.on('data', (d: Buffer) => (t.output = (t.output + d.toString()).slice(-20_000)));
      const up = await until(async () => (await Promise.all(step.ready.map((a) => accepts(a.host, a.port)))).every(Boolean), READY_TIMEOUT_MS);
      outcomes.push({ step: `${where} terminal: ${firstLine(step.script)}`, ok: up, detail: up ? undefined : `not ready in ${READY_TIMEOUT_MS / 1000} s:\n${t.output.slice(-2000)}` });
      terminals.push(t);
      if (!up) break;
    } else if (step.kind === 'stop') {
      const terminal = terminals.pop();
      if (terminal === undefined) throw new Error(`${where}: stop without a terminal`);
      outcomes.push(await stopTerminal(terminal, where));
    }
  }
  for (let t = terminals.pop(); t !== undefined; t = terminals.pop()) outcomes.push(await stopTerminal(t, 'end of README'));
  return outcomes;
}

async function stopTerminal(t: Terminal, where: string): Promise<Outcome> {
  const pgid = t.child.pid!;
  killGroup(pgid, 'SIGINT'); // Ctrl-C
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  await Promise.race([t.exited.then((e) => (exit = e)), new Promise((r) => setTimeout(r, STOP_TIMEOUT_MS))]);
  const problems: string[] = [];
  if (exit === undefined) problems.push(`did not exit within ${STOP_TIMEOUT_MS / 1000} s of Ctrl-C`);
  else if (!(exit.code === 0 || exit.signal === 'SIGINT' || exit.code === 130 || exit.code === 2)) problems.push(`exited with ${exit.code ?? exit.signal}`);
  // Processes it started (in its group or their own sessions) must be gone and their ports free.
  const gone = await until(async () => !groupAlive(pgid) && (await Promise.all(t.ready.map((a) => accepts(a.host, a.port)))).every((up) => !up), 30_000);
  if (!gone) {
    const still = [];
    for (const a of t.ready) if (await accepts(a.host, a.port)) still.push(`${a.host}:${a.port}`);
    problems.push(`left running: ${groupAlive(pgid) ? 'processes in its group; ' : ''}${still.length > 0 ? `ports still answering: ${still.join(', ')}` : ''}`);
  }
  killGroup(pgid, 'SIGKILL');
  groups.delete(pgid);
  const ok = problems.length === 0;
  return { step: `${where} Ctrl-C the terminal`, ok, detail: ok ? undefined : `${problems.join('; ')}\n${t.output.slice(-1500)}` };
}

function firstLine(script: string): string {
  return script.split('\n').find((l) => l.trim() !== '' && !l.trim().startsWith('#') && !/^[()]$/.test(l.trim()))?.trim() ?? '';
}

function describe(r: Result, wantExit: number): string {
  const how = r.timedOut ? `did not finish in ${COMMAND_TIMEOUT_MS / 1000} s` : `exit ${r.code ?? r.signal} (expected ${wantExit})`;
  return `${how}\n${(r.stdout + r.stderr).slice(-1500)}`;
}

async function main(argv: string[]): Promise<number> {
  let times = 1;
  let readme = path.join(REPO, 'README.md');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--times') times = Number(argv[++i]);
    else readme = path.resolve(argv[i]!);
  }
  if (!Number.isInteger(times) || times < 1) throw new Error('--times takes a whole number ≥ 1');
  const steps = parseReadme(readFileSync(readme, 'utf8'));
  const tally = new Map<string, { ok: number; failed: number; detail?: string }>();
  for (let round = 1; round <= times; round++) {
    const started = Date.now();
    const outcomes = await runRound(steps);
    const failed = outcomes.filter((o) => !o.ok);
    console.log(`round ${round}/${times}: ${outcomes.length - failed.length}/${outcomes.length} steps ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const o of outcomes) {
      const t = tally.get(o.step) ?? { ok: 0, failed: 0 };
      if (o.ok) t.ok++;
      else {
        t.failed++;
        console.log(`  FAIL ${o.step}\n    ${(o.detail ?? '').split('\n').join('\n    ')}`);
      }
      if (o.detail?.startsWith('skipped')) t.detail = o.detail;
      tally.set(o.step, t);
    }
  }
  console.log(`\nsummary over ${times} round(s):`);
  for (const [step, t] of tally) console.log(`  ${t.detail?.startsWith('skipped') ? 'skip' : t.failed === 0 ? 'ok  ' : 'FAIL'} ${t.ok}/${t.ok + t.failed}  ${step}${t.detail?.startsWith('skipped') ? ` (${t.detail})` : ''}`);
  const allOk = [...tally.values()].every((t) => t.failed === 0);
  console.log(allOk ? 'OK' : 'FAILED');
  return allOk ? 0 : 1;
}

function cleanup(): void {
  for (const pgid of groups) killGroup(pgid, 'SIGKILL');
}

if (import.meta.main) {
  process.on('exit', cleanup);
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  process.on('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(`readme-check: ${err.message}`);
      cleanup();
      process.exit(1);
    },
  );
}
