/**
 * The entry module of a host: a worker thread's or a child process's first module. It connects the
 * host to its parent through the thread's port or the process's IPC channel.
 */
import { parentPort } from 'node:worker_threads';
import type { HostBuild } from './build.js';
import { runHost } from './host.js';
import type { HostPort } from './port-transport.js';

if (parentPort !== null) {
  const port = parentPort;
  const hostPort: HostPort = {
    post: (message) => port.postMessage(message),
    listen(onMessage) {
      port.on('message', onMessage);
      return () => port.off('message', onMessage);
    },
  };
  runHost(hostPort, () => process.exit(0));
} else if (process.send !== undefined) {
  // Set by the parent for a restricted host from TypeScript sources (see build.ts).
  const built = process.env.TROUPE_HOST_MODULES;
  const modules = built === undefined ? {} : (JSON.parse(built) as HostBuild['modules']);
  const hostPort: HostPort = {
    post: (message) => process.send!(message),
    listen(onMessage) {
      process.on('message', onMessage);
      return () => process.off('message', onMessage);
    },
  };
  // The parent's death closes the channel: the host goes with it.
  process.on('disconnect', () => process.exit(0));
  runHost(hostPort, () => process.exit(0), modules);
} else {
  process.stderr.write('troupe host: start me as a worker thread or a forked child process\n');
  process.exit(2);
}
