'use strict';
// An anonymous client abusing the request topic: what it costs the broker with the plugin.
//
//   BOOTSTRAP_PLUGIN=build/mosquitto_bootstrap.so node bench/abuse.js [flood|connack]
//
// flood:   three clean-session clients with 60 000-byte client ids each send 10 000 one-byte
//          QoS 1 requests on bootstrap/register without reading anything, then DISCONNECT.
//          Prints the broker's RSS (VmRSS) before, at its peak and 10 s after the last of
//          them disconnected, in MiB. Aborts (kills the broker) if RSS passes 4 GiB.
// connack: CONNACK latency of fresh connections, one every 20 ms, idle and then while one
//          client (in a process of its own) pours invalid requests as fast as it can.
//
// Prints one JSON line of results; nothing secret. Each scenario finishes within ~2 minutes.
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const h = require('../tests/integration/lib/harness');
const mqtt = require('../tests/integration/lib/mqtt_raw');

const REQUEST_TOPIC = 'bootstrap/register';
// the example configuration's log level: the broker measured as it is run
const LOG = ['error', 'warning', 'notice', 'information'];
const MiB = 1024 * 1024;
const RSS_CAP_MIB = 4096;
const DEADLINE_MS = 110000;

const FLOOD = { clients: 3, idBytes: 60000, requests: 10000, afterS: 10 };
const CONNACK = { requests: 20000, samples: 200, gapMs: 20 };

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) / 1024;
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function summary(values) {
  const r = (x) => +x.toFixed(2);
  return { samples: values.length, p50: r(pct(values, 50)), p99: r(pct(values, 99)), max: r(Math.max(...values)) };
}

const round = (x) => +x.toFixed(1);

async function flood() {
  const env = await h.startEnv({ emulatorProcess: true, logTypes: LOG });
  const pid = env.broker.proc.pid;
  const t0 = Date.now();
  const clients = [];
  let aborted = null;
  let peak = 0;
  let onAbort;
  const abortedP = new Promise((r) => { onAbort = r; });
  const sampler = setInterval(() => {
    let rss;
    try { rss = rssMiB(pid); } catch (e) { return; } // the broker is gone
    peak = Math.max(peak, rss);
    if (!aborted && (rss > RSS_CAP_MIB || Date.now() - t0 > DEADLINE_MS)) {
      aborted = rss > RSS_CAP_MIB ? `RSS ${Math.round(rss)} MiB passed the ${RSS_CAP_MIB} MiB cap` : `still running after ${DEADLINE_MS / 1000} s`;
      env.broker.proc.kill('SIGKILL');
      for (const c of clients) c.destroy();
      onAbort();
    }
  }, 20);
  const until = (p) => Promise.race([p, abortedP]);
  try {
    await h.sleep(1000);
    const rssStart = rssMiB(pid);
    peak = rssStart;
    const token = Math.random().toString(36).slice(2, 8);
    const prefixes = Array.from({ length: FLOOD.clients }, (_, i) => `flood${i}-${token}-`);
    const ids = prefixes.map((p, i) => p.padEnd(FLOOD.idBytes, String.fromCharCode(97 + i)));
    const payloads = Array.from({ length: FLOOD.requests }, () => 'x');
    // connect all, then flood together: none of them reads anything after its CONNACK
    for (const clientId of ids) {
      const c = await until(mqtt.connect(env.port, { clientId, clean: true, record: false }));
      if (!c) break;
      c.pause();
      clients.push(c);
    }
    const tFlood = Date.now();
    await until(Promise.all(clients.map((c) => c.publishMany(REQUEST_TOPIC, payloads, { qos: 1 }))));
    const writtenMs = Date.now() - tFlood;
    // DISCONNECT queued behind the requests: the broker reads it once it has read them all.
    // Our side stays open (unread data) until the end, so nothing we sent is lost to a reset.
    const closing = clients.map((c) => c.disconnect({ timeoutMs: DEADLINE_MS }));
    // gone: the broker logs "Client <id> disconnected." (or "closed its connection", or
    // "Socket error on client <id>, disconnecting"); it cuts its log lines ~500 characters
    // after the format's length, so look for the start of the id only
    let goneMs = null;
    const gone = prefixes.map((p) => new RegExp(`(: Client |Socket error on client )${p}`));
    while (!aborted && Date.now() - t0 < DEADLINE_MS) {
      const log = env.broker.log();
      if (gone.every((re) => re.test(log))) { goneMs = Date.now() - tFlood; break; }
      await h.sleep(100);
    }
    if (!aborted) await until(h.sleep(FLOOD.afterS * 1000));
    const rssEnd = aborted ? null : rssMiB(pid);
    for (const c of clients) c.destroy();
    await Promise.all(closing);
    const result = {
      scenario: 'flood', clients: FLOOD.clients, clientIdBytes: FLOOD.idBytes, requestsPerClient: FLOOD.requests,
      rssStartMiB: round(rssStart), rssPeakMiB: round(peak), rssEndMiB: rssEnd === null ? null : round(rssEnd),
      growthMiB: rssEnd === null ? null : round(rssEnd - rssStart), peakGrowthMiB: round(peak - rssStart),
      writtenMs, allDisconnectedMs: goneMs, endSampledSAfterDisconnect: goneMs === null ? null : FLOOD.afterS,
      aborted,
    };
    if (!aborted) result.brokerAlive = env.broker.proc.exitCode === null && env.broker.proc.signalCode === null;
    console.log(JSON.stringify(result));
    if (!aborted) await env.assertLogClean();
  } finally {
    clearInterval(sampler);
    for (const c of clients) c.destroy();
    await env.stop();
  }
}

async function probe(port, n, gapMs) {
  const out = [];
  const codes = new Set();
  for (let i = 0; i < n; i++) {
    const r = await h.connackMs(port);
    out.push(r.ms);
    codes.add(r.returnCode);
    await h.sleep(gapMs);
  }
  return { ms: out, codes: [...codes] };
}

// The pouring client runs in a process of its own, so that its work does not delay the
// probe's measurements in this one. It prints "ready" after its CONNACK and its counts on
// SIGTERM; it keeps pouring rounds of CONNACK.requests until then.
function startPourer(port) {
  const p = spawn(process.execPath, [__filename, '--pour', String(port), String(CONNACK.requests)], { stdio: ['ignore', 'pipe', 'inherit'] });
  h.live.add(p);
  let out = '';
  const ready = new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => { out += d; if (out.includes('ready\n')) resolve(); });
    p.on('close', () => reject(new Error('the pouring client exited early')));
  });
  ready.catch(() => {});
  const stop = () => new Promise((resolve) => {
    p.on('close', () => {
      h.live.delete(p);
      const line = out.trim().split('\n').pop();
      try { resolve(JSON.parse(line)); } catch (e) { resolve({ error: 'no result from the pouring client' }); }
    });
    p.kill('SIGTERM');
  });
  return { ready, stop };
}

async function pour(port, n) {
  const c = await mqtt.connect(port, { clientId: 'pourer-' + process.pid, record: false });
  const payloads = Array.from({ length: n }, () => 'x');
  let rounds = 0, firstRoundMs = null;
  const t0 = Date.now();
  process.on('SIGTERM', () => {
    const seconds = (Date.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ requestsWritten: rounds * n, rounds, firstRoundWrittenMs: firstRoundMs, seconds: +seconds.toFixed(2), repliesReceived: c.received }) + '\n', () => process.exit(0));
  });
  process.stdout.write('ready\n');
  for (;;) {
    await c.publishMany(REQUEST_TOPIC, payloads, { qos: 1 });
    rounds++;
    if (firstRoundMs === null) firstRoundMs = Date.now() - t0;
  }
}

async function connack() {
  const env = await h.startEnv({ emulatorProcess: true, logTypes: LOG });
  try {
    await h.sleep(500);
    const idle = await probe(env.port, CONNACK.samples, CONNACK.gapMs);
    const pourer = startPourer(env.port);
    await pourer.ready;
    const loaded = await probe(env.port, CONNACK.samples, CONNACK.gapMs);
    const poured = await pourer.stop();
    console.log(JSON.stringify({
      scenario: 'connack', probeGapMs: CONNACK.gapMs,
      connackIdleMs: summary(idle.ms), connackDuringMs: summary(loaded.ms), returnCodes: [...new Set([...idle.codes, ...loaded.codes])],
      pour: { requestsPerRound: CONNACK.requests, ...poured, perSecond: poured.seconds ? Math.round(poured.requestsWritten / poured.seconds) : null },
      brokerAlive: env.broker.proc.exitCode === null && env.broker.proc.signalCode === null,
    }));
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
}

(async () => {
  const args = process.argv.slice(2);
  if (args[0] === '--pour') return pour(Number(args[1]), Number(args[2]));
  const scenario = args[0] || 'flood';
  if (scenario === 'flood') return flood();
  if (scenario === 'connack') return connack();
  throw new Error(`unknown scenario ${scenario}: flood or connack`);
})().catch((e) => { console.error(path.basename(__filename) + ': ' + e.message); process.exit(1); });
