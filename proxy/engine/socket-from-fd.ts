// socketFromFd: a net.Socket over a connected TCP descriptor handed back by an engine (detach),
// created paused and not reading (`pauseOnCreate`, which @types/node does not list): nothing is
// read from the kernel until its new owner resumes it, so no byte is taken before it is wanted.
import net from 'node:net';

export function socketFromFd(fd: number): net.Socket {
  const opts = { fd, pauseOnCreate: true, allowHalfOpen: true, readable: true, writable: true };
  return new net.Socket(opts as net.SocketConstructorOpts);
}
