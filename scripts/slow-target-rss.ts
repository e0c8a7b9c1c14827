// Memory under backpressure (issue 12 §3): CLIENTS clients each push MIB MiB as fast as they can
// through a listener (child process, plain TCP app) into targets that read 1 MiB/s each; prints the
// listener's RSS (VmRSS) every second. Bounded: stops after SECONDS.
// Usage: node scripts/slow-target-rss.ts [clients=20] [mib=200] [seconds=30]
import net from 'node:net';
import { once } from 'node:events';
import { makeSpec } from '../proxy/testing.ts';
import { spawnListener } from '../proxy/protect/hostile-testing.ts';

const CLIENTS = Number(process.argv[2] ?? 20);
const MIB = Number(process.argv[3] ?? 200);
const SECONDS = Number(process.argv[4] ?? 30);
const after: (() => unknown)[] = [];

// Targets: read 64 KiB every 62.5 ms = 1 MiB/s, by pausing the socket between reads.
let received = 0;
const target = net.createServer((s) => {
  s.on('error', () => {});
  s.pause();
  const tick = setInterval(() => {
    let want = 64 * 1024;
    while (want > 0) {
      const chunk = s.read() as Buffer | null;
      if (chunk === null) break;
      received += chunk.length;
      want -= chunk.length;
    }
  }, 62.5);
  s.on('close', () => clearInterval(tick));
});
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const tport = (target.address() as net.AddressInfo).port;

const l = await spawnListener({ after: (fn) => after.push(fn) }, makeSpec([`127.0.0.1:${tport}`]));
const idle = l.rssKiB();
const chunk = Buffer.alloc(64 * 1024, 7);
let sent = 0;
const sockets: net.Socket[] = [];
for (let i = 0; i < CLIENTS; i++) {
  const s = net.connect(l.port, '127.0.0.1');
  s.on('error', () => {});
  sockets.push(s);
  void (async () => {
    await once(s, 'connect');
    for (let n = 0; n < (MIB * 1024 * 1024) / chunk.length && !s.destroyed; n++) {
      sent += chunk.length;
      if (!s.write(chunk)) await once(s, 'drain');
    }
  })().catch(() => {});
}
let max = 0;
const t0 = Date.now();
while (Date.now() - t0 < SECONDS * 1000) {
  await new Promise((r) => setTimeout(r, 1000));
  const rss = l.rssKiB();
  max = Math.max(max, rss);
  console.log(JSON.stringify({ s: Math.round((Date.now() - t0) / 1000), rssMiB: +(rss / 1024).toFixed(1), sentMiB: Math.round(sent / 1048576), targetsReadMiB: Math.round(received / 1048576) }));
}
console.log(JSON.stringify({ clients: CLIENTS, idleRssMiB: +(idle / 1024).toFixed(1), maxRssMiB: +(max / 1024).toFixed(1), sentMiB: Math.round(sent / 1048576), targetsReadMiB: Math.round(received / 1048576), seconds: SECONDS }));
for (const s of sockets) s.destroy();
for (const fn of after) await fn();
target.close();
process.exit(0);
