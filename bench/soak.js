'use strict';
// Soak: thousands of devices over a few minutes against an emulator (in its own process,
// enforcing the 30/50 QPS quota) that keeps injecting random faults. Each device is a real
// mosquitto_rr that does what the reply says (waits retryAfter and asks again); a fifth of them
// ask a second time later (existing devices). Prints requests, replies by code and the broker's
// RSS at start and end; exits non-zero if any device got no answer.
//
//   BOOTSTRAP_PLUGIN=build/mosquitto_bootstrap.so node bench/soak.js [devices=3000] [concurrency=150] [fault_every_ms=2000]
const fs = require('fs');
const h = require('../tests/integration/lib/harness');

const DEVICES = Number(process.argv[2] || 3000);
const CONCURRENCY = Number(process.argv[3] || 150);
const FAULT_EVERY_MS = Number(process.argv[4] || 2000);

const FAULTS = [
  () => ({ kind: '5xx', status: 503, count: 1 + Math.floor(Math.random() * 10) }),
  () => ({ kind: '5xx', status: 500, code: 'InternalError', count: 1 + Math.floor(Math.random() * 5) }),
  () => ({ kind: 'throttle', status: Math.random() < 0.5 ? 400 : 503, count: 1 + Math.floor(Math.random() * 5) }),
  () => ({ kind: 'drop', count: 1 + Math.floor(Math.random() * 5) }),
  () => ({ kind: 'garbage', count: 1 + Math.floor(Math.random() * 5) }),
  () => ({ kind: 'latency', ms: 1000 + Math.floor(Math.random() * 6000), count: 1 + Math.floor(Math.random() * 5) }),
];

function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

(async () => {
  const env = await h.startEnv({
    emulatorProcess: true,
    emulator: { quota: { RegisterDevice: 30, QueryDeviceDetail: 50 } },
    pluginOptions: { http_timeout_ms: 2000, max_queue: 2000 },
  });
  const pid = env.broker.proc.pid;
  const rssStart = rssKiB(pid);
  let rssPeak = rssStart;
  const injected = {};
  const faultTimer = setInterval(() => {
    const f = FAULTS[Math.floor(Math.random() * FAULTS.length)]();
    injected[f.kind] = (injected[f.kind] || 0) + f.count;
    env.emu.addFaults(f).catch(() => {});
  }, FAULT_EVERY_MS);
  const rssTimer = setInterval(() => { rssPeak = Math.max(rssPeak, rssKiB(pid)); }, 1000);

  // every device once, then a fifth of them again (existing, unactivated devices); a device
  // never runs twice at once: two connections with one client id would take each other over
  const ids = Array.from({ length: DEVICES }, (_, i) => `soak-${String(i).padStart(5, '0')}`);
  const work = [...ids, ...ids.filter((_, i) => i % 5 === 0)];
  const replies = {};
  const unanswered = [];
  let requests = 0;
  const t0 = Date.now();
  let next = 0;
  async function worker() {
    while (next < work.length) {
      const id = work[next++];
      const r = await env.device(id, { maxTries: 30, timeoutS: 120 });
      requests += r.tries;
      for (const c of r.codes) replies[c] = (replies[c] || 0) + 1;
      if (!r.reply) unanswered.push(id);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  clearInterval(faultTimer);
  clearInterval(rssTimer);
  const elapsed = (Date.now() - t0) / 1000;
  const rssEnd = rssKiB(pid);
  const emu = await env.emu.stats();
  await env.assertLogClean();
  await env.stop();
  const m = /(\d+) platform calls, (\d+) retries, (\d+) throttled answers/.exec(env.broker.log());
  console.log(JSON.stringify({
    devices: DEVICES, bootstraps: work.length, seconds: +elapsed.toFixed(1), requests, repliesByCode: replies,
    unanswered: unanswered.length, brokerRssKiB: { start: rssStart, peak: rssPeak, end: rssEnd },
    faultsInjected: injected, plugin: m ? { calls: +m[1], retries: +m[2], throttledAnswers: +m[3] } : null,
    emulator: { calls: emu.byAction, throttledByQuotaOrFault: emu.throttled, faultsServed: emu.faultsServed },
  }, null, 1));
  process.exit(unanswered.length ? 1 : 0);
})().catch((e) => { console.error(e.stack || e.message); process.exit(2); });
