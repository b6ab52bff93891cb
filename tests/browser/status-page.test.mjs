// The acceptance of the status page: the real holdfast-dataplane and two holdfast-hash-upstream processes, a slow
// upload through a Tee route, and the page in Debian's Chromium on the dataplane's --metrics listener. The page must
// show the upload arriving, then waiting once both upstreams are gone (the one receiving it SIGKILLed), replaying
// once one is back on its address, and finally finished with its two attempts. Traffic stays on 127.0.0.1.
// Screenshots go to target/browser/: status-page.png while it waits (scripts/browser-test --update-screenshot copies
// it to docs/status-page.png, the README's picture), status-page-replaying.png while it is replayed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, waitFor } from './browser.mjs';
import { start, killAll } from './processes.mjs';
import { PAGE_FILE } from './stub-server.mjs';

const OUT = process.env.HOLDFAST_SCREENSHOT_DIR || fileURLToPath(new URL('../../target/browser/', import.meta.url));
const HOST = 'photos.test';
const KiB = 1024;
const MiB = 1024 * KiB;

const dir = mkdtempSync(join(tmpdir(), 'holdfast-status-page-'));
const started = [];
let browser;
after(async () => {
  await browser?.close();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

function upstream(name, listen) {
  const proc = start(name, 'holdfast-hash-upstream',
    ['--listen', listen, '--progress', '--progress-step', String(64 * KiB), '--deliveries', join(dir, 'deliveries.jsonl')]);
  started.push(proc);
  return proc.waitForLine('its listening line', (line) => line.startsWith('listening '))
    .then((line) => Object.assign(proc, { address: line.slice('listening '.length).trim() }));
}

async function dataplane(snapshot) {
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  writeFileSync(join(dir, 'snapshot.json'), JSON.stringify(snapshot));
  const proc = start('dataplane', 'holdfast-dataplane', [
    '--listen', '127.0.0.1:0', '--listen-tls', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--metrics', '127.0.0.1:0',
    '--log-format', 'json', '--spool-dir', spool, '--spool-quota', '64Mi', '--config-file', join(dir, 'snapshot.json'),
    '--shutdown-delay', '0s', '--drain-timeout', '1s']);
  started.push(proc);
  const line = await proc.waitForLine('its start-up line', (l) => l.includes('"holdfast dataplane started"'), { timeout: 30000 });
  const fields = JSON.parse(line).fields;
  return Object.assign(proc, { listen: fields.listen, metrics: fields.metrics });
}

/** A snapshot routing everything for HOST to one backend (the two upstreams) with a Tee policy. */
function snapshotFor(endpoints) {
  return {
    version: 7,
    hosts: [{ host: HOST, paths: [{ path: '/', pathType: 'Prefix', backend: 'apps/photos:80', policy: 'apps/photos',
      ingress: { namespace: 'apps', name: 'photos' } }] }],
    backends: { 'apps/photos:80': { service: { namespace: 'apps', name: 'photos', port: '80' },
      endpoints: endpoints.map((address) => ({ address: address.split(':')[0], port: Number(address.split(':')[1]) })) } },
    policies: { 'apps/photos': { mode: 'Tee', replay: { upstreamWaitTimeoutMs: 60000 } } },
  };
}

function get(address, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: address.split(':')[1], path, agent: false, timeout: 5000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    }).on('error', reject).on('timeout', function () { this.destroy(new Error(`GET ${path} timed out`)); });
  });
}
const api = async (metrics) => JSON.parse((await get(metrics, '/status/api')).body);

/**
 * PUTs `size` random bytes, `rate` bytes per second (changeable through `upload.rate`; Infinity: as fast as the
 * dataplane takes them). `upload.done` resolves to the response, `upload.sha256` to the hash of what was sent.
 */
function upload(address, path, size, rate, requestId) {
  const hash = createHash('sha256');
  const state = { rate, sent: 0 };
  const req = http.request({ host: '127.0.0.1', port: address.split(':')[1], method: 'PUT', path, agent: false,
    headers: { host: HOST, 'content-length': size, 'content-type': 'application/octet-stream', 'x-request-id': requestId } });
  state.done = new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
  });
  state.sha256 = (async () => {
    while (state.sent < size) {
      const chunk = randomBytes(Math.min(size - state.sent, state.rate === Infinity ? 256 * KiB : 16 * KiB));
      hash.update(chunk);
      state.sent += chunk.length;
      if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve));
      if (state.rate !== Infinity) await new Promise((resolve) => setTimeout(resolve, (chunk.length / state.rate) * 1000));
      if (req.destroyed) throw new Error('the upload was cut off');
    }
    req.end();
    return hash.digest('hex');
  })();
  state.sha256.catch(() => {});
  state.done.catch(() => {});
  return state;
}

test('the status page follows an upload through an upstream kill, a wait and a replay', { timeout: 120000 }, async () => {
  const [a, b] = await Promise.all([upstream('upstream-a', '127.0.0.1:0'), upstream('upstream-b', '127.0.0.1:0')]);
  const dp = await dataplane(snapshotFor([a.address, b.address]));
  try {
    await scenario(dp, [a, b]);
  } catch (error) {
    for (const proc of started) console.error(`--- last lines of ${proc.name} (pid ${proc.pid}):\n${proc.lines.slice(-25).join('\n')}`);
    console.error(`--- GET /status/api now:\n${await get(dp.metrics, '/status/api').then((r) => r.body, (e) => e.message)}`);
    throw error;
  }
});

async function scenario(dp, upstreams) {
  // The page and its API are served on the --metrics listener, and never on the client listener.
  const page = await get(dp.metrics, '/status');
  assert.equal(page.status, 200, `GET /status on the metrics listener: ${page.status} ${page.body.slice(0, 200)}`);
  assert.match(page.headers['content-type'], /^text\/html/);
  assert.equal(page.body, readFileSync(PAGE_FILE, 'utf8'));
  const answer = await get(dp.metrics, '/status/api');
  assert.equal(answer.status, 200, `GET /status/api on the metrics listener: ${answer.status} ${answer.body.slice(0, 200)}`);
  assert.match(answer.headers['content-type'], /^application\/json/);
  assert.match(answer.headers['cache-control'] ?? '', /no-store|no-cache/);
  const first = JSON.parse(answer.body);
  assert.equal(first.config.version, 7);
  assert.equal(first.spool.quotaBytes, 64 * MiB);
  assert.deepEqual(first.backends.map((backend) => backend.name), ['apps/photos:80']);
  assert.deepEqual(first.backends[0].endpoints.map((e) => e.address).sort(), upstreams.map((u) => u.address).sort());
  assert.notEqual((await get(dp.listen, '/status')).body, page.body, 'the client listener serves the status page');

  // One small upload that finishes at once, so that the finished list has something in it.
  const small = upload(dp.listen, '/upload/small?token=in-the-query', 300 * KiB, Infinity, 'status-page-small');
  assert.equal((await small.done).status, 200);

  browser = await launch({ width: 1280, height: 760 });
  const tab = browser.page;
  await tab.goto(`http://${dp.metrics}/status`);
  const finishedRows = tab.locator('#finished tr[data-id]');
  await waitFor('the small upload in the finished list', async () => (await finishedRows.count()) === 1);
  assert.match(await finishedRows.first().innerText(), /^200[\s\S]*\/upload\/small/);
  assert.ok(!(await tab.locator('body').innerText()).includes('in-the-query'), 'a query is shown');

  // The slow upload: it appears, and its progress grows.
  const linesBefore = upstreams.map((u) => u.lines.length);
  const slow = upload(dp.listen, '/upload/slow', 6 * MiB, 256 * KiB, 'status-page-slow');
  const entry = await waitFor('the slow upload in /status/api',
    async () => (await api(dp.metrics)).inFlight.find((r) => r.path === '/upload/slow'));
  const row = `#in-flight tr[data-id="${entry.id}"]`;
  // What the row shows, read at once (the page redraws every second).
  const shown = () => tab.locator(row).evaluate((tr) => ({
    state: tr.querySelector('[data-state]').dataset.state,
    attempt: tr.querySelector('td.attempt').innerText,
    received: Number(tr.querySelector('[data-bar="received"]').dataset.progress),
  }), null, { timeout: 2000 });
  await waitFor('its row on the page', async () => (await tab.locator(row).count()) === 1);
  const progress = (await shown()).received;
  await waitFor(`its progress to grow past ${progress} %`, async () => (await shown()).received > progress, { timeout: 5000 });

  // With Tee the delivery starts with the body: the upstream printing progress lines is the one receiving it.
  const receiving = await Promise.any(upstreams.map((u, i) =>
    u.waitForLine('progress of the slow upload', (l) => l.startsWith('progress '), { from: linesBefore[i] }).then(() => u)));
  const other = upstreams.find((u) => u !== receiving);
  await waitFor(`the page showing it relaying to ${receiving.address}`, async () => {
    const { state, attempt } = await shown();
    return state === 'relaying' && attempt === `#1 ${receiving.address}`;
  });

  // Nothing can take it: the other upstream stopped, then the receiving one SIGKILLed mid-body.
  await other.kill('SIGTERM');
  await receiving.kill('SIGKILL');
  const waiting = await waitFor('the page showing it waiting', async () => {
    const now = await shown();
    return now.state === 'waiting' && now;
  }, { timeout: 15000, interval: 50 });
  assert.match(waiting.attempt, /no endpoint$/, 'an endpoint shown while the upload waits for one');
  mkdirSync(OUT, { recursive: true });
  await tab.screenshot({ path: join(OUT, 'status-page.png'), fullPage: true });

  // The upstream comes back on its address: the upload is replayed there, attempt 2.
  const back = await upstream('upstream-again', receiving.address);
  await waitFor(`the page showing it replaying, attempt #2 to ${back.address}`, async () => {
    const { state, attempt } = await shown();
    return state === 'replaying' && attempt === `#2 ${back.address}`;
  }, { timeout: 15000, interval: 50 });
  await tab.screenshot({ path: join(OUT, 'status-page-replaying.png'), fullPage: true });

  // The rest of the body as fast as it goes: the client gets its 200 with the hash of what it sent.
  slow.rate = Infinity;
  const response = await Promise.race([slow.done,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no response to the slow upload within 30 s')), 30000).unref())]);
  assert.equal(response.status, 200, response.body);
  const delivered = JSON.parse(response.body);
  assert.equal(delivered.sha256, await slow.sha256);
  assert.equal(delivered.attempt, 2);

  // It leaves the in-flight list for the finished one, with its two attempts: the reset one, then the 200 (refused
  // connections while it waited sent nothing and are no attempts; the page folds them into one line if listed).
  const done = `#finished tr[data-id="${entry.id}"]`;
  await waitFor('the slow upload in the finished list', async () => (await tab.locator(done).count()) === 1, { timeout: 5000 });
  assert.equal(await tab.locator(row).count(), 0);
  assert.equal(await finishedRows.first().getAttribute('data-id'), entry.id, 'the newest is not first');
  assert.match(await tab.locator(done).innerText(), /^200/);
  const attempts = await tab.locator(`${done} ol.attempts li:not([data-failure="connect_refused"])`).allInnerTexts();
  assert.equal(attempts.length, 2, attempts.join('\n'));
  assert.ok(attempts[0].startsWith(receiving.address + ' →'), attempts[0]);
  assert.notEqual(await tab.locator(`${done} ol.attempts li`).first().getAttribute('data-failure'), null);
  assert.equal(attempts[1], `${back.address} → 200`);
  assert.ok((await tab.locator(`${done} ol.attempts li`).count()) <= 3, 'refused connections are not folded');
  assert.equal(await tab.locator('#live').getAttribute('data-live'), 'ok');
}
