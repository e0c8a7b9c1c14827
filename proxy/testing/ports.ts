// Ports that refuse or never answer, held for the whole test so nobody else can take them (a port
// bound, released and reused later could be anyone's by then).
import net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';

/**
 * `n` loopback ports where connecting is refused, held until the test ends: a python3 child binds
 * them without listening (a bound socket blocks other binds; with no listener the kernel answers
 * a SYN with RST). The child also exits when its stdin (this process) goes away.
 */
export async function closedPorts(t: { after: (fn: () => unknown) => void }, n = 1): Promise<number[]> {
  const py = spawn('python3', ['-c', `import socket,sys\nss=[socket.socket() for _ in range(${n})]\nfor s in ss: s.bind(("127.0.0.1",0))\nprint(" ".join(str(s.getsockname()[1]) for s in ss),flush=True)\nsys.stdin.read()`], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => {
    if (py.exitCode === null && py.signalCode === null) py.kill('SIGKILL');
  });
  const [line] = await once(py.stdout!, 'data');
  return String(line).trim().split(' ').map(Number);
}

/** One refusing port, held until the test ends (see closedPorts). */
export async function closedPort(t: { after: (fn: () => unknown) => void }): Promise<number> {
  return (await closedPorts(t, 1))[0]!;
}

/**
 * A loopback port whose SYNs go unanswered: a listener (python, since Node always accepts) with
 * backlog 0 that never accepts, its queue filled by one parked connection.
 */
export async function startBlackhole(): Promise<{ port: number; stop: () => void }> {
  const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(py.stdout!, 'data');
  const port = Number(String(line).trim());
  // Backlog 0 holds one completed connection; once it is parked there, the queue is full.
  const parked = net.connect(port, '127.0.0.1').on('error', () => {});
  await once(parked, 'connect');
  return { port, stop: () => { parked.destroy(); py.kill('SIGKILL'); } };
}

