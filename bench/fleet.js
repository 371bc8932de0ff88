'use strict';
// Fleet driver (BENCHMARKS.md S9): many devices switched on at once that behave as real ones do.
//
//   node bench/fleet.js -p PORT --devices N --product-key PK --product-secret-file F
//        [--arrival-s 10] [--concurrency 512] [--addresses 4096] [--prefix P] [--broker-pid PID]
//        [--reply-timeout-s 60] [--timeout-s S] [--max-tries 100] [--sample-ms 1000] [--keepalive 120]
//
// Each device is switched on at a random moment within --arrival-s. A device then connects (its
// deviceId as client id), subscribes to its reply topic, sends one signed request (a new random
// each time), waits for the answer and disconnects. On an error with retryAfter it comes back
// that many seconds later and does it all again; on a triple it is done; on an error without
// retryAfter it gives up (counted by code). A device that got no answer in --reply-timeout-s
// comes back 10 s later ("no_reply"). At most --concurrency connections are open at once (a
// device due meanwhile waits for a place, FIFO), so 100 000 devices need no 100 000 descriptors.
//
// Source addresses: device i connects from 127.1.0.0 + (i mod --addresses) + 1 (loopback; the
// whole 127.0.0.0/8 answers on lo). The plugin limits refused requests per address (60 a
// minute, plugin/broker/intake.c) and valid ones not at all, so addresses are not needed for
// its limits; they are needed for the kernel's: one source address has about 28 000 ephemeral
// ports, each held in TIME_WAIT for 60 s after a close, and a fleet that reconnects every few
// seconds from one address runs out of them. Spread over many, each address reconnects rarely.
//
// Prints one JSON object: per device attempts and time from its first request to its triple
// (percentiles; also from its switch-on, the wait for a connection slot included), codes seen, devices served over time, requests per device, broker CPU seconds
// and RSS sampled from /proc/<pid> (--broker-pid), the machine's CPU use. The emulator's
// Throttling count is read by bench/run.js around the run. No secret is printed.
const crypto = require('crypto');
const fs = require('fs');
const mqtt = require('../tests/integration/lib/mqtt_raw');

const args = process.argv.slice(2);
const arg = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const opt = {
  port: Number(arg('-p', arg('--port', '1883'))),
  devices: Number(arg('--devices', arg('-n', '100'))),
  productKey: arg('--product-key', 'a1TestProduct'),
  secretFile: arg('--product-secret-file', null),
  arrivalS: Number(arg('--arrival-s', '10')),
  concurrency: Number(arg('--concurrency', '512')),
  addresses: Number(arg('--addresses', '4096')),
  prefix: arg('--prefix', 'fleet' + crypto.randomBytes(2).toString('hex')),
  brokerPid: Number(arg('--broker-pid', '0')),
  replyTimeoutS: Number(arg('--reply-timeout-s', '60')),
  timeoutS: Number(arg('--timeout-s', '3600')),
  maxTries: Number(arg('--max-tries', '100')),
  sampleMs: Number(arg('--sample-ms', '1000')),
  keepAlive: Number(arg('--keepalive', '120')),
};
for (const k of ['port', 'devices', 'arrivalS', 'concurrency', 'addresses', 'replyTimeoutS', 'timeoutS', 'maxTries', 'sampleMs']) {
  if (!(Number.isFinite(opt[k]) && opt[k] >= 0) || (k !== 'arrivalS' && opt[k] === 0)) {
    console.error(`fleet: bad ${k}: ${opt[k]}`);
    process.exit(2);
  }
}
if (opt.addresses > 65536 * 200) opt.addresses = 65536 * 200;
const secret = opt.secretFile ? fs.readFileSync(opt.secretFile, 'utf8').split(/\r?\n/)[0] : null;

// ---- /proc ----
function procCpuS(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch (e) { return null; }
}
function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch (e) { return null; }
}
function machineCpu() {
  const v = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3] - v[4], total };
}
const pct = (s, p) => (s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- devices ----
const codes = {};
const countCode = (c) => { codes[c] = (codes[c] || 0) + 1; };
// retryAfter told, per code: { n, min, max, sum } in seconds
const retryAfter = {};
const countRetry = (c, s) => {
  const r = retryAfter[c] || (retryAfter[c] = { n: 0, min: s, max: s, sum: 0 });
  r.n++; r.sum += s; r.min = Math.min(r.min, s); r.max = Math.max(r.max, s);
};
const devices = Array.from({ length: opt.devices }, (_, i) => ({
  id: `${opt.prefix}-${String(i).padStart(6, '0')}`,
  addr: (() => { const k = (i % opt.addresses) + 1; return `127.${1 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`; })(),
  attempts: 0, switchedOn: null, firstAsk: null, servedAt: null, gaveUp: null, codes: [],
}));

let open = 0, maxOpen = 0, requests = 0, connectErrors = 0;
const waiting = [];
function acquire() {
  if (open < opt.concurrency) { open++; maxOpen = Math.max(maxOpen, open); return Promise.resolve(); }
  return new Promise((resolve) => waiting.push(resolve));
}
function release() {
  const next = waiting.shift();
  if (next) next(); else open--;
}

function request(d) {
  if (!secret) return JSON.stringify({ deviceId: d.id });
  const random = crypto.randomBytes(12).toString('hex');
  const sign = crypto.createHmac('sha256', secret).update(`deviceName${d.id}productKey${opt.productKey}random${random}`).digest('hex');
  return JSON.stringify({ deviceId: d.id, random, signMethod: 'hmacsha256', sign });
}

// One session: connect, subscribe, ask, wait, disconnect. Returns ms to wait before the next
// session, or null when the device is done (served or gave up).
async function session(d, t0) {
  let c;
  try {
    c = await mqtt.connect(opt.port, { localAddress: d.addr, clientId: d.id, keepAlive: opt.keepAlive, record: false, timeoutMs: 30000 });
  } catch (e) {
    connectErrors++;
    countCode('connect_error');
    return 1000;
  }
  try {
    if (c.connack.returnCode !== 0) { countCode('connack_' + c.connack.returnCode); return 5000; }
    const topic = 'bootstrap/reply/' + d.id;
    await c.subscribe(topic, 1);
    const reply = c.waitFor((m) => m.topic === topic, opt.replyTimeoutS * 1000);
    reply.catch(() => {});
    if (d.firstAsk === null) d.firstAsk = Date.now() - t0;
    d.attempts++;
    requests++;
    await c.publish('bootstrap/register', request(d), { qos: 0 });
    let m;
    try { m = await reply; } catch (e) { d.codes.push('no_reply'); countCode('no_reply'); return 10000; }
    let r;
    try { r = JSON.parse(m.payload.toString('utf8')); } catch (e) { r = null; }
    if (r && r.success === true) { d.servedAt = Date.now() - t0; d.codes.push('ok'); countCode('ok'); return null; }
    const code = r && typeof r.code === 'string' ? r.code : 'unparsable';
    d.codes.push(code);
    countCode(code);
    if (r && Number.isInteger(r.retryAfter) && r.retryAfter > 0) { countRetry(code, r.retryAfter); return r.retryAfter * 1000; }
    d.gaveUp = code;
    return null;
  } catch (e) {
    countCode('session_error');
    return 1000;
  } finally {
    c.disconnect({ timeoutMs: 2000 }).catch(() => {});
  }
}

async function device(d, t0, deadline) {
  await sleep(Math.random() * opt.arrivalS * 1000);
  d.switchedOn = Date.now() - t0;
  for (;;) {
    if (Date.now() >= deadline) return;
    await acquire();
    let wait;
    try { wait = await session(d, t0); } finally { release(); }
    if (wait === null) return;
    if (d.attempts >= opt.maxTries) { d.gaveUp = 'max_tries'; return; }
    await sleep(wait);
  }
}

(async () => {
  const pid = opt.brokerPid;
  const rssStart = pid ? rssKiB(pid) : null;
  const cpu0 = pid ? procCpuS(pid) : null;
  const m0 = machineCpu();
  const t0 = Date.now();
  const deadline = t0 + opt.timeoutS * 1000;
  const samples = []; // [s, served, open, rss KiB]
  let rssPeak = rssStart || 0;
  const sampler = setInterval(() => {
    const rss = pid ? rssKiB(pid) : null;
    if (rss > rssPeak) rssPeak = rss;
    samples.push([Math.round((Date.now() - t0) / 100) / 10, devices.filter((x) => x.servedAt !== null).length, open, rss]);
  }, opt.sampleMs);
  await Promise.all(devices.map((d) => device(d, t0, deadline)));
  clearInterval(sampler);
  const t1 = Date.now();
  const cpu1 = pid ? procCpuS(pid) : null;
  const rssEnd = pid ? rssKiB(pid) : null;
  const m1 = machineCpu();

  const served = devices.filter((d) => d.servedAt !== null);
  const toTriple = served.map((d) => d.servedAt - d.firstAsk).sort((a, b) => a - b);
  // from switch-on: the wait for a connection slot (--concurrency) included
  const fromOn = served.map((d) => d.servedAt - d.switchedOn).sort((a, b) => a - b);
  const attempts = devices.map((d) => d.attempts).sort((a, b) => a - b);
  const lastServed = served.reduce((a, d) => Math.max(a, d.servedAt), 0);
  const hist = {};
  for (const a of attempts) hist[a] = (hist[a] || 0) + 1;
  const gaveUp = {};
  for (const d of devices) if (d.servedAt === null) gaveUp[d.gaveUp || 'timeout'] = (gaveUp[d.gaveUp || 'timeout'] || 0) + 1;
  // served over time, thinned to at most 60 points
  const step = Math.max(1, Math.ceil(samples.length / 60));
  const overTime = samples.filter((_, i) => i % step === 0 || i === samples.length - 1).map(([s, n, o, rss]) => ({ s, served: n, open: o, rss_kib: rss }));
  console.log(JSON.stringify({
    devices: opt.devices, served: served.length, seconds: (t1 - t0) / 1000, last_served_s: lastServed / 1000,
    devices_per_s: served.length / Math.max(0.001, lastServed / 1000),
    arrival_s: opt.arrivalS, concurrency: opt.concurrency, max_open: maxOpen, addresses: Math.min(opt.addresses, opt.devices),
    time_to_triple_ms: { samples: toTriple.length, p50: pct(toTriple, 50), p90: pct(toTriple, 90), p99: pct(toTriple, 99), max: toTriple.length ? toTriple[toTriple.length - 1] : 0 },
    from_switch_on_ms: { samples: fromOn.length, p50: pct(fromOn, 50), p99: pct(fromOn, 99), max: fromOn.length ? fromOn[fromOn.length - 1] : 0 },
    requests, requests_per_device: requests / opt.devices,
    attempts: { mean: requests / opt.devices, p50: pct(attempts, 50), p99: pct(attempts, 99), max: attempts[attempts.length - 1] || 0, histogram: hist },
    codes, retry_after_s: Object.fromEntries(Object.entries(retryAfter).map(([c, r]) => [c, { n: r.n, min: r.min, mean: r.sum / r.n, max: r.max }])),
    not_served: gaveUp, connect_errors: connectErrors,
    broker: pid ? { cpu_s: cpu1 - cpu0, cpu_cores: (cpu1 - cpu0) / ((t1 - t0) / 1000), rss_kib_start: rssStart, rss_kib_peak: rssPeak, rss_kib_end: rssEnd, rss_growth_kib: rssPeak - rssStart } : null,
    machine_cpu_busy: m1.total > m0.total ? (m1.busy - m0.busy) / (m1.total - m0.total) : 0,
    over_time: overTime,
  }));
  process.exit(0);
})();
