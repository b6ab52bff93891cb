// The real binaries as child processes: their output kept as lines to wait on, and every one of them killed by pid
// when the test ends, however it ends.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** Where holdfast-dataplane and holdfast-hash-upstream are (scripts/browser-test sets it after building them). */
export const BIN_DIR = process.env.HOLDFAST_BIN_DIR || fileURLToPath(new URL('../../target/debug/', import.meta.url));

const running = new Set();
// Last resort if the test process exits without its clean-up having run.
process.on('exit', () => {
  for (const child of running) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

/** A started binary: `lines` holds stdout and stderr, `waitForLine` waits for one, `kill` ends it and waits. */
export function start(name, binary, args) {
  const child = spawn(BIN_DIR.replace(/\/?$/, '/') + binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const proc = { name, child, pid: child.pid, lines: [], waiters: new Set() };
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child);
    proc.exit = { code, signal };
    for (const waiter of proc.waiters) waiter.check();
    resolve(proc.exit);
  }));
  const startFailed = new Promise((resolve) => child.once('error', resolve));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      proc.lines.push(line);
      for (const waiter of proc.waiters) waiter.check();
    });
  }
  /** The first line from index `from` on that satisfies `match`; fails after `timeout` ms or if the process exits. */
  proc.waitForLine = (what, match, { timeout = 10000, from = 0 } = {}) => new Promise((resolve, reject) => {
    let next = from;
    const waiter = {
      check() {
        for (; next < proc.lines.length; next++) {
          if (match(proc.lines[next])) return done(null, proc.lines[next]);
        }
        if (proc.exit) done(new Error(`${name} exited (${JSON.stringify(proc.exit)}) before ${what}`));
      },
    };
    const timer = setTimeout(() => done(new Error(`timed out after ${timeout} ms waiting for ${name}: ${what}`)), timeout);
    function done(error, line) {
      clearTimeout(timer);
      proc.waiters.delete(waiter);
      if (error) reject(error); else resolve(line);
    }
    proc.waiters.add(waiter);
    startFailed.then((error) => done(new Error(`${name} did not start: ${error.message}`)));
    waiter.check();
  });
  /** Sends `signal` to this process by its pid and waits (at most 10 s) for it to exit. */
  proc.kill = async (signal = 'SIGKILL') => {
    if (proc.exit || child.exitCode !== null || child.signalCode !== null) return proc.exit;
    child.kill(signal);
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`${name} did not exit on ${signal}`)), 10000).unref());
    return Promise.race([exited, timeout]);
  };
  proc.exited = exited;
  return proc;
}

/** Kills every process still running (SIGKILL, by pid) and waits for them. */
export async function killAll() {
  await Promise.all([...running].map(async (child) => {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }));
}
