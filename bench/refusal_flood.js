'use strict';
// A flooder that never reads its socket, on client id and address that collided in the refusal
// limiter's old public hash (FNV-1a, 65 536 slots, a 32-slot probe: issue 18, item 2), with
// 40 filler connections holding its probe windows. Measures what the broker holds meanwhile.
//
//   BOOTSTRAP_PLUGIN=build/mosquitto_bootstrap.so [BOOTSTRAP_PRELOAD=libasan.so] \
//     node bench/refusal_flood.js [seconds=45] [--check]
//
// --check: exit 1 unless the broker grew by less than 16 MiB and answered at most 10 of the
// flooder's refusals (its per-client-id limit), for the test suite's smoke run.
// The broker runs with the example configuration's limits (max_packet_size 2048,
// max_queued_messages 100, max_queued_bytes 65536) and log level. The flooder sends invalid
// requests (QoS 0, as fast as its socket takes them) and never reads; VmRSS is sampled every
// 250 ms. Prints one JSON line: requests sent, answers the broker queued for the flooder
// (counted from its log), RSS at the start, peak and end in MiB, the growth, and RSS every 5 s. With an ASan
// build (BOOTSTRAP_PRELOAD set) ASan's quarantine is kept at 4 MB so RSS shows what is held.
const fs = require('fs');
const h = require('../tests/integration/lib/harness');
const mqtt = require('../tests/integration/lib/mqtt_raw');
const collide = require('../tests/integration/lib/fnv_collide');

const SECONDS = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) || 45);
const CHECK = process.argv.includes('--check');
const FLOODER_ID = 'flood-1', FLOODER_ADDR = '127.200.0.1', FILLERS = 40;
const INVALID = '{"deviceId":1}';

function rssMiB(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
}

(async () => {
  const ids = collide.clientIds(FLOODER_ID, FILLERS);
  const addrs = collide.addresses(FLOODER_ADDR, FILLERS);
  const brokerEnv = process.env.BOOTSTRAP_PRELOAD
    ? { ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0:quarantine_size_mb=4:thread_local_quarantine_size_kb=64' } : {};
  await h.withEnv({ brokerEnv, logTypes: ['error', 'warning', 'notice', 'information'],
    globalConfig: 'max_packet_size 2048\nmax_queued_messages 100\nmax_queued_bytes 65536' }, async (env) => {
    const pid = env.broker.proc.pid;
    for (let i = 0; i < FILLERS; i++) {
      const c = await mqtt.connect(env.port, { clientId: ids[i], localAddress: addrs[i], keepAlive: 0 });
      await c.publish('bootstrap/register', INVALID, { qos: 1 });
      await c.disconnect();
    }
    const flooder = await mqtt.connect(env.port, { clientId: FLOODER_ID, localAddress: FLOODER_ADDR, keepAlive: 0, record: false });
    await flooder.subscribe(`bootstrap/reply/${FLOODER_ID}`, 0);
    flooder.pause(); // never reads again: whatever the broker sends it piles up on the broker's side
    await h.sleep(500);
    const start = rssMiB(pid);
    let peak = start, sent = 0, ticks = 0;
    const every5s = [];
    const sampler = setInterval(() => {
      const now = rssMiB(pid);
      peak = Math.max(peak, now);
      if (++ticks % 20 === 0) every5s.push(+now.toFixed(1));
    }, 250);
    const until = Date.now() + SECONDS * 1000;
    const batch = Array.from({ length: 1000 }, () => INVALID);
    while (Date.now() < until) {
      await flooder.publishMany('bootstrap/register', batch, { qos: 0 });
      sent += batch.length;
    }
    await h.sleep(1000);
    clearInterval(sampler);
    const end = rssMiB(pid);
    peak = Math.max(peak, end);
    const answered = env.broker.log().split('\n').filter((l) => l.includes(`from client '${FLOODER_ID}'`)).length;
    flooder.destroy();
    console.log(JSON.stringify({ seconds: SECONDS, sent, answeredLogged: answered, rssStartMiB: +start.toFixed(1),
      rssPeakMiB: +peak.toFixed(1), rssEndMiB: +end.toFixed(1), growthMiB: +(peak - start).toFixed(1), rssEvery5sMiB: every5s }));
    if (CHECK && (peak - start >= 16 || answered > 10)) {
      console.error(`refusal_flood: the broker grew by ${(peak - start).toFixed(1)} MiB and answered ${answered} refusals (limits: 16 MiB, 10)`);
      process.exitCode = 1;
    }
  });
})().catch((e) => { console.error(e); process.exit(1); });
