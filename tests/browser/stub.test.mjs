// The status page alone, in a real browser, against the stub API (stub-server.mjs): what it draws from each kind
// of answer, that it follows changes, that data never becomes markup, and that it survives the API going away.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startStub, LIFE_ID, HOSTILE } from './stub-server.mjs';
import { launch, waitFor } from './browser.mjs';

const OUT = fileURLToPath(new URL('../../target/browser/', import.meta.url));
let stub, browser, page;
const pageErrors = [];

before(async () => {
  stub = await startStub({ scenario: 'live', stepMs: 500 });
  browser = await launch();
  page = browser.page;
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => { if (message.type() === 'error') pageErrors.push(message.text()); });
});
after(async () => {
  await browser?.close();
  await stub?.close();
});

const attr = (selector, name) => page.locator(selector).first().getAttribute(name, { timeout: 2000 });
const progress = async (selector) => Number(await attr(selector, 'data-progress'));
const rows = (section) => page.locator(`#${section} tr[data-id]`).count();
const text = (selector) => page.locator(selector).innerText({ timeout: 2000 });

test('draws requests in flight, finished ones, backends and the spool from the API', async () => {
  stub.set('live');
  await page.goto(stub.url);
  await waitFor('4 requests in flight', async () => (await rows('in-flight')) === 4);
  assert.equal(await rows('finished'), 3);
  const states = await page.locator('#in-flight [data-state]').evaluateAll((badges) => badges.map((b) => b.dataset.state));
  assert.deepEqual(states, ['receiving', 'receiving', 'relaying', 'tunnel']);
  // Route as namespace/ingress → service:port, or the backend's name for a hand-written snapshot.
  assert.match(await text('#in-flight tr[data-id="e07a6d13c9f2b845"]'), /media\/videos → videos:https/);
  assert.match(await text('#in-flight tr[data-id="41d8e2a0b6c5f917"]'), /\buploads\b/);
  // A chunked body's received bar is indeterminate: no number to show.
  assert.equal(await attr('tr[data-id="9be1f04c22d35a70"] [data-bar="received"]', 'data-progress'), null);
  assert.match(await attr('tr[data-id="9be1f04c22d35a70"] [data-bar="received"]', 'class'), /indeterminate/);
  // Finished: status, attempts as endpoint → outcome (refused connections folded), the error.
  const retried = page.locator('#finished tr[data-id="0f6e2d9a8c7b1e35"]');
  assert.deepEqual(await retried.locator('ol.attempts li').allInnerTexts(), [
    '10.1.2.3:8080 → connection reset before the response', '10.1.2.4:8080, 10.1.2.3:8080 → connection refused ×3',
    '10.1.2.4:8080 → timed out after 60 s', '10.1.2.3:8080 → 200']);
  assert.match(await text('#finished tr[data-id="c3a90f7e16b2d458"]'), /503[\s\S]*no endpoint could take the request within 60 s/);
  // Backends: every endpoint with its conditions; a backend without endpoints says so.
  assert.equal(await page.locator('#backends tr[data-endpoint]').count(), 5);
  assert.match(await text('#backends tr[data-endpoint="10.1.7.22:8443"]'), /not ready[\s\S]*terminating/);
  assert.match(await text('#backends tbody[data-backend="apps/grpc-echo:9000"]'), /No endpoint/);
  // Header: config version and age, spool against its quota.
  assert.match(await text('#config'), /version 12[\s\S]*applied 42 s ago/);
  assert.match(await text('#spool'), /of 10\.0 GiB/);
  const spool = await progress('#spool [data-bar="spool"]');
  assert.ok(spool > 10 && spool < 30, `spool bar at ${spool} %`);
  assert.equal(await attr('#live', 'data-live'), 'ok');
});

test('follows an upload through its states until it is finished with two attempts', async () => {
  stub.set('live');
  await page.goto(stub.url);
  const row = `#in-flight tr[data-id="${LIFE_ID}"]`;
  const state = () => attr(`${row} [data-state]`, 'data-state');
  await waitFor('the upload receiving', async () => (await state()) === 'receiving');
  const first = await progress(`${row} [data-bar="received"]`);
  await waitFor('its received bar to grow', async () => (await progress(`${row} [data-bar="received"]`)) > first + 5);
  const seen = new Set();
  await waitFor('the upload waiting', async () => seen.add(await state()).has('waiting'), { timeout: 15000, interval: 50 });
  assert.match(await text(`${row} td.attempt`), /^#1\s+no endpoint$/);
  await waitFor('the upload replaying', async () => seen.add(await state()).has('replaying'), { timeout: 15000, interval: 50 });
  for (const expected of ['spooled', 'relaying', 'waiting']) assert.ok(seen.has(expected), `never saw ${expected}: ${[...seen]}`);
  assert.equal(await attr(`${row} [data-state]`, 'class'), 'badge');
  assert.match(await text(`${row} td.attempt`), /#2\s+10\.1\.2\.4:8080/);
  const done = `#finished tr[data-id="${LIFE_ID}"]`;
  await waitFor('the upload in the finished list', async () => (await page.locator(done).count()) === 1, { timeout: 10000 });
  assert.equal(await page.locator(row).count(), 0);
  assert.equal(await page.locator(`${done} ol.attempts li`).count(), 2);
  assert.match(await text(done), /^200/);
  // Newest first.
  assert.equal(await attr('#finished tr[data-id]', 'data-id'), LIFE_ID);
});

test('shows strings from the API as text, never as markup, and paths without their query', async () => {
  stub.set('hostile');
  await page.goto(stub.url);
  await waitFor('the hostile request', async () => (await rows('in-flight')) === 1);
  const shown = await page.locator('main').innerText();
  for (const [name, value] of Object.entries(HOSTILE)) {
    if (name === 'query') assert.ok(!shown.includes('SECRET'), 'the query is shown');
    else assert.ok(shown.includes(value), `${name} not shown as text: ${value}`);
  }
  assert.equal(await page.locator('main img, main script, main svg, main b, main i, main u').count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await attr('#in-flight tr[data-id]', 'data-id'), HOSTILE.id);
});

test('says so when there is nothing to show', async () => {
  stub.set('empty');
  await page.goto(stub.url);
  await waitFor('the empty answer', async () => /version 1\b/.test(await text('#config')));
  for (const section of ['in-flight', 'finished', 'backends']) {
    assert.ok(await page.locator(`#${section} > .empty`).isVisible(), `${section} has no empty-state line`);
    assert.ok(!(await page.locator(`#${section} table`).isVisible()), `${section} shows an empty table`);
  }
  assert.match(await text('#spool'), /0 B used[\s\S]*0 files · no quota/);
  assert.equal(await page.locator('#spool [data-bar]').count(), 0);
});

test('shows that the API is unreachable, keeps the last data and recovers when it answers again', async () => {
  stub.set('down');
  await page.goto(stub.url);
  await waitFor('the problem shown', () => page.locator('#problem').isVisible(), { timeout: 5000 });
  assert.match(await text('#in-flight'), /Waiting for the first answer/);
  stub.set('live');
  await waitFor('rows', async () => (await rows('in-flight')) > 0, { timeout: 5000 });
  assert.ok(!(await page.locator('#problem').isVisible()));
  stub.set('down');
  await waitFor('the problem shown', () => page.locator('#problem').isVisible(), { timeout: 5000 });
  assert.match(await text('#problem'), /status API \(\/status\/api\) is unreachable/);
  assert.equal(await attr('#live', 'data-live'), 'error');
  assert.ok((await rows('in-flight')) > 0, 'the last data is gone');
  stub.set('error');
  await waitFor('the HTTP error shown', async () => /HTTP 500/.test(await text('#problem')), { timeout: 5000 });
  stub.set('live');
  await waitFor('the problem gone', async () => !(await page.locator('#problem').isVisible()), { timeout: 5000 });
  assert.equal(await attr('#live', 'data-live'), 'ok');
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: OUT + 'stub.png', fullPage: true });
});

test('finds its API under any path prefix', async () => {
  stub.set('live');
  const before = stub.requests.length;
  await page.goto(stub.url.replace('/status', '/behind/a/proxy/status'));
  await waitFor('rows', async () => (await rows('in-flight')) > 0);
  assert.ok(stub.requests.slice(before).includes('/behind/a/proxy/status/api'));
});

test('fetched nothing but itself and its API, and raised no error', () => {
  const paths = new Set(stub.requests.map((url) => new URL(url, 'http://stub').pathname));
  assert.deepEqual([...paths].filter((p) => !/^(\/behind\/a\/proxy)?\/status(\/api)?$/.test(p)), []);
  assert.deepEqual(pageErrors.filter((e) => !/Failed to load resource|net::ERR_/.test(e)), []);
});
