// Test-only: a stand-in for the dataplane's status API, so that the status page can be developed and tested without
// the dataplane. It serves dataplane/src/status/page.html at any path ending in /status and canned JSON, in the shape
// the dataplane answers, at the same path + /api. Scenarios:
//   live     requests whose states and bytes change with time: one upload goes receiving → spooled → relaying →
//            waiting → replaying → answered and then shows in the finished list with two attempts
//   empty    nothing in flight, nothing finished, no backend, no spool quota
//   hostile  markup and a query in every string the page shows
//   down     the API closes every connection without an answer (the page itself is still served)
//   error    the API answers 500
// Run it alone to look at the page: node stub-server.mjs [--port 8099] [--scenario live]
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PAGE_FILE = fileURLToPath(new URL('../../dataplane/src/status/page.html', import.meta.url));

const MiB = 1 << 20;
const GiB = 1 << 30;

/** Starts the stub on 127.0.0.1; `stepMs` is the length of one step of the live upload's life (1 s by default). */
export async function startStub({ scenario = 'live', port = 0, stepMs = 1000 } = {}) {
  const stub = {
    scenario, stepMs, since: Date.now(), requests: [],
    /** Switches scenario; the live upload's life starts again. */
    set(name) { this.scenario = name; this.since = Date.now(); },
  };
  const server = http.createServer((req, res) => {
    stub.requests.push(req.url);
    const path = new URL(req.url, 'http://stub').pathname;
    if (path.endsWith('/status')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(readFileSync(PAGE_FILE));
    } else if (path.endsWith('/status/api')) {
      answerApi(stub, res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  stub.url = `http://127.0.0.1:${server.address().port}/status`;
  stub.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); });
  return stub;
}

function answerApi(stub, res) {
  if (stub.scenario === 'down') return res.socket.destroy();
  if (stub.scenario === 'error') {
    res.writeHead(500, { 'content-type': 'text/plain' });
    return res.end('internal error\n');
  }
  const now = Date.now();
  const body = { live, empty, hostile }[stub.scenario](now, (now - stub.since) / stub.stepMs);
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const photosRoute = { namespace: 'apps', ingress: 'photos', service: 'photos', port: '80', backend: 'apps/photos:80' };
const videosRoute = { namespace: 'media', ingress: 'videos', service: 'videos', port: 'https', backend: 'media/videos:https' };

function request(fields) {
  const route = 'route' in fields ? fields.route : photosRoute;
  return {
    method: 'PUT', host: 'photos.test', path: '/upload', client: '10.0.0.7:51234', protocol: 'HTTP/1.1', route,
    backend: route ? route.backend : fields.backend, mode: 'Buffered', tunnel: false, ...fields,
  };
}

// The upload whose life the live scenario plays, at `step` steps after the scenario started.
export const LIFE_ID = '5d0c2b9e41a7f3c8';
const LIFE_DECLARED = 512 * MiB;
function lifeOf(now, step) {
  const base = request({ id: LIFE_ID, startedAt: now - step * 1000, declaredBytes: LIFE_DECLARED });
  const at = (from, to) => Math.min(1, Math.max(0, (step - from) / (to - from)));
  const received = Math.round(LIFE_DECLARED * Math.min(1, 0.02 + at(0, 6)));
  const phase = (state, attempt, endpoint, delivered) =>
    ({ ...base, state, attempt, endpoint, receivedBytes: received, deliveredBytes: Math.round(LIFE_DECLARED * delivered) });
  if (step < 6) return phase('receiving', 0, null, 0);
  if (step < 7) return phase('spooled', 0, null, 0);
  if (step < 10) return phase('relaying', 1, '10.1.2.3:8080', 0.6 * at(7, 10));
  if (step < 13) return phase('waiting', 1, '10.1.2.3:8080', 0); // the last endpoint tried: not shown
  if (step < 18) return phase('replaying', 2, '10.1.2.4:8080', at(13, 18));
  if (step < 19) return phase('answered', 2, '10.1.2.4:8080', 1);
  const { state, attempt, endpoint, ...done } = phase('answered', 2, null, 1);
  return { ...done, finishedAt: base.startedAt + 19000, status: 200, error: null, attempts: [
    { endpoint: '10.1.2.3:8080', outcome: 'connection closed before the response', failure: 'reset_before_response' },
    { endpoint: '10.1.2.4:8080', outcome: '200', failure: null },
  ] };
}

function live(now, step) {
  const life = lifeOf(now, step);
  const seconds = (now / 1000) % 600;
  const inFlight = [
    request({ id: '9be1f04c22d35a70', method: 'POST', host: 'api.test', path: '/ingest', client: '10.0.4.2:40112',
      protocol: 'HTTP/2', mode: 'Buffered', startedAt: now - 3200, receivedBytes: Math.round(37 * MiB + seconds * 411000),
      declaredBytes: null, deliveredBytes: 0, attempt: 0, endpoint: null, state: 'receiving' }),
    request({ id: 'e07a6d13c9f2b845', host: 'videos.test', path: '/v1/videos/upload', client: '10.0.0.12:60311',
      route: videosRoute, mode: 'Tee', startedAt: now - 74000, receivedBytes: Math.round(1.2 * GiB + seconds * 0.5 * MiB),
      declaredBytes: 2 * GiB, deliveredBytes: Math.round(1.2 * GiB + seconds * 0.5 * MiB - 96 * 1024), attempt: 1,
      endpoint: '10.1.7.21:8443', state: 'relaying' }),
    request({ id: '41d8e2a0b6c5f917', method: 'GET', host: 'chat.test', path: '/socket', client: '10.0.0.31:53870',
      route: null, backend: 'uploads', mode: 'Tunnel', tunnel: true, startedAt: now - 1_250_000, receivedBytes: 18_432,
      declaredBytes: null, deliveredBytes: 53_204, attempt: 1, endpoint: '10.1.9.4:8080', state: 'tunnel' }),
  ];
  const finished = [
    request({ id: 'c3a90f7e16b2d458', method: 'POST', host: 'api.test', path: '/ingest', client: '10.0.4.2:40098',
      startedAt: now - 95000, finishedAt: now - 33000, status: 503, receivedBytes: 4 * MiB, declaredBytes: 4 * MiB,
      deliveredBytes: 0, attempts: [], error: 'no endpoint could take the request within 60 s' }),
    request({ id: '0f6e2d9a8c7b1e35', startedAt: now - 140000, finishedAt: now - 121000, status: 200,
      receivedBytes: 96 * MiB, declaredBytes: 96 * MiB, deliveredBytes: 96 * MiB, mode: 'Tee', attempts: [
        { endpoint: '10.1.2.3:8080', outcome: 'connection reset before the response', failure: 'reset_before_response' },
        { endpoint: '10.1.2.4:8080', outcome: 'connection refused', failure: 'connect_refused' },
        { endpoint: '10.1.2.3:8080', outcome: 'connection refused', failure: 'connect_refused' },
        { endpoint: '10.1.2.4:8080', outcome: 'connection refused', failure: 'connect_refused' },
        { endpoint: '10.1.2.4:8080', outcome: 'timed out after 60 s', failure: 'timeout' },
        { endpoint: '10.1.2.3:8080', outcome: '200', failure: null }], error: null }),
    request({ id: 'a81c5e9f03d7b264', startedAt: now - 260000, finishedAt: now - 259000, status: 413,
      receivedBytes: 0, declaredBytes: 12 * GiB, deliveredBytes: 0, attempts: [],
      error: 'body of 12 GiB over the route\'s maxBodySize (10 GiB)' }),
  ];
  if (life.finishedAt) finished.unshift(life); else inFlight.unshift(life);
  const waiting = life.state === 'waiting';
  return {
    now, config: { version: 12, appliedAt: now - 42000 },
    spool: { usedBytes: 1.35 * GiB + life.receivedBytes, quotaBytes: 10 * GiB, files: inFlight.length - 1 },
    inFlight, finished,
    backends: [
      { name: 'apps/photos:80', service: { namespace: 'apps', name: 'photos', port: '80' }, protocol: 'Http1', tls: false,
        endpoints: [
          { address: '10.1.2.3:8080', ready: !waiting, serving: !waiting, terminating: false, inFlight: 0, failures: waiting ? 2 : 0, backingOffMs: waiting ? 350 : 0 },
          { address: '10.1.2.4:8080', ready: true, serving: true, terminating: false, inFlight: waiting ? 0 : 1, failures: waiting ? 1 : 0, backingOffMs: waiting ? 800 : 0 }] },
      { name: 'media/videos:https', service: { namespace: 'media', name: 'videos', port: 'https' }, protocol: 'Http1', tls: true,
        endpoints: [
          { address: '10.1.7.21:8443', ready: true, serving: true, terminating: false, inFlight: 1, failures: 0, backingOffMs: 0 },
          { address: '10.1.7.22:8443', ready: false, serving: true, terminating: true, inFlight: 0, failures: 0, backingOffMs: 0 }] },
      { name: 'uploads', service: null, protocol: 'Http1', tls: false,
        endpoints: [{ address: '10.1.9.4:8080', ready: true, serving: true, terminating: false, inFlight: 1, failures: 0, backingOffMs: 0 }] },
      { name: 'apps/grpc-echo:9000', service: { namespace: 'apps', name: 'grpc-echo', port: '9000' }, protocol: 'Http2', tls: false, endpoints: [] },
    ],
  };
}

function empty(now) {
  return { now, config: { version: 1, appliedAt: now - 5000 }, spool: { usedBytes: 0, quotaBytes: 0, files: 0 },
    inFlight: [], finished: [], backends: [] };
}

// Every string the page shows, as markup that would run or show if it were ever parsed as HTML.
export const HOSTILE = {
  id: '"><img src=x onerror="window.pwned=1">', host: '<img src=x onerror="window.pwned=2">',
  path: '/x/<script>window.pwned=3</script>', query: '?token=SECRET-IN-QUERY', client: '"><b>bold</b>',
  namespace: '<i>ns</i>', ingress: "ing';window.pwned=4;'", endpoint: '<svg onload="window.pwned=5">',
  backend: '</table><img src=x onerror="window.pwned=6">', error: '<img src=x onerror="window.pwned=7">',
  outcome: '<script>window.pwned=8</script>', method: '<u>PUT</u>', state: '<b>receiving</b>',
};
function hostile(now) {
  const H = HOSTILE;
  const route = { namespace: H.namespace, ingress: H.ingress, service: H.backend, port: '80', backend: H.backend };
  const common = { method: H.method, host: H.host, path: H.path + H.query, client: H.client, protocol: H.method,
    route, mode: H.method, tunnel: false, startedAt: now - 1000, receivedBytes: 10, declaredBytes: 20, deliveredBytes: 0 };
  return {
    now, config: { version: 3, appliedAt: now - 1000 }, spool: { usedBytes: 10, quotaBytes: 100, files: 1 },
    inFlight: [{ ...common, id: H.id, attempt: 1, endpoint: H.endpoint, state: H.state }],
    finished: [{ ...common, id: H.id + '2', finishedAt: now, status: 502, error: H.error,
      attempts: [{ endpoint: H.endpoint, outcome: H.outcome, failure: H.outcome }] }],
    backends: [{ name: H.backend, service: { namespace: H.namespace, name: H.backend, port: H.ingress }, protocol: H.method,
      tls: false, endpoints: [{ address: H.endpoint, ready: true, serving: true, terminating: false, inFlight: 1,
        failures: 0, backingOffMs: 0 }] }],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf('--' + name);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const stub = await startStub({ scenario: arg('scenario', 'live'), port: Number(arg('port', 8099)) });
  console.log(`status page stub (scenario ${stub.scenario}): ${stub.url}`);
  // The live upload's life starts again every 30 s.
  setInterval(() => { if (stub.scenario === 'live') stub.set('live'); }, 30000);
}
