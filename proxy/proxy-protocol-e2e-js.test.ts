// proxy-protocol-e2e.test.ts on the js engine (Node accepts, reads and forwards: the reference path); the file
// itself runs on the process's default engine, the native one, which accepts these apps too.
process.env.FPROXY_ENGINE = 'js';
await import('./proxy-protocol-e2e.test.ts');
