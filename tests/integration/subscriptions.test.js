'use strict';
// An outsider's attack on broker memory through subscriptions acl strict used to allow without
// bound: deep filters below a client's own reply topic (each level is a node in the broker's
// subscription tree, about 137 KB a subscription at 190 levels: 2.2 GB in 10 s) and thousands of
// one-level filters or shared-subscription groups of it. Now: a client id may subscribe to its
// reply topic, to it and "/#", and to a few one-level filters an hour; nothing deeper.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

// ASan keeps freed memory in quarantine (256 MB by default): a small one, so RSS shows what the
// broker really holds
const ASAN_SMALL_QUARANTINE = { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:quarantine_size_mb=4:thread_local_quarantine_size_kb=64' };

function rssMiB(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
}
const granted = (code) => code < 0x80;

test('deep filters below one\'s own reply topic are refused; the reply topic itself, "/#" and four one-level filters an hour are granted', async () => {
  await h.withEnv({ emulator: {} }, async (env) => {
    const c = await mqtt.connect(env.port, { clientId: 'sub-0001', clean: false });
    assert.ok(granted(await c.subscribe('bootstrap/reply/sub-0001', 1)), 'its own reply topic');
    assert.ok(granted(await c.subscribe('bootstrap/reply/sub-0001/#', 1)), 'its own reply topic and below');
    assert.ok(!granted(await c.subscribe('bootstrap/reply/sub-0001/a/b', 1)), 'two levels below');
    assert.ok(!granted(await c.subscribe('bootstrap/reply/sub-0001/' + 'a/'.repeat(180) + 'a', 1)), '181 levels below');
    assert.ok(!granted(await c.subscribe('bootstrap/reply/sub-0001/+', 1)), 'a wildcard level');
    assert.ok(!granted(await c.subscribe('bootstrap/reply/sub-0001/' + 'x'.repeat(65), 1)), 'a 65-byte level');
    const oneLevel = [];
    for (let i = 0; i < 10; i++) oneLevel.push(granted(await c.subscribe(`bootstrap/reply/sub-0001/s${i}`, 1)));
    assert.deepStrictEqual(oneLevel, [true, true, true, true, false, false, false, false, false, false], 'four one-level filters, then none');
    const groups = [];
    for (let i = 0; i < 3; i++) groups.push(granted(await c.subscribe(`$share/g${i}/bootstrap/reply/sub-0001`, 1)));
    assert.deepStrictEqual(groups, [false, false, false], 'shared groups share the same budget');
    // a client id with '/' owns no reply topic (no reply goes to it): its "own" deep topic is
    // refused, or each such id would grow a 190-level branch of the broker's tree
    const slashy = '000001/' + 'a/'.repeat(186) + 'z';
    const e = await mqtt.connect(env.port, { clientId: slashy, clean: false });
    assert.ok(!granted(await e.subscribe(`bootstrap/reply/${slashy}`, 1)), 'a client id with / : its "own" reply topic');
    assert.ok(!granted(await e.subscribe(`bootstrap/reply/${slashy}/#`, 1)), 'a client id with / : below it');
    await e.disconnect();
    // a $share group name is at most 64 bytes
    const g = await mqtt.connect(env.port, { clientId: 'sub-0005' });
    assert.ok(!granted(await g.subscribe(`$share/${'g'.repeat(1900)}/bootstrap/reply/sub-0005`, 1)), 'a 1 900-byte group name');
    await g.disconnect();
    // the budget is the client id's: a fresh id has its own
    const d = await mqtt.connect(env.port, { clientId: 'sub-0002' });
    assert.ok(granted(await d.subscribe('$share/g/bootstrap/reply/sub-0002', 1)), 'a shared group of its own reply topic, counted');
    await c.disconnect();
    await d.disconnect();
    // a device still gets its triple on its reply topic
    const r = await env.rr('sub-0003');
    assert.strictEqual(r.reply.success, true);
  });
});

test('200 anonymous clients holding their connections subscribe deep and wide: at most four filters each are granted and the broker grows by less than 16 MiB', async () => {
  await h.withEnv({ emulator: {}, brokerEnv: ASAN_SMALL_QUARANTINE, logTypes: ['error', 'warning', 'notice'] }, async (env) => {
    const pid = env.broker.proc.pid;
    assert.strictEqual((await env.rr('sub-warm')).reply.success, true); // the first allocations are not the attack's
    const before = rssMiB(pid);
    const deep = 'a/'.repeat(190) + 'a';
    const clients = [];
    let asked = 0, grantedCount = 0;
    try {
      for (let n = 0; n < 200; n++) {
        const id = `deep-${n}`;
        const c = await mqtt.connect(env.port, { clientId: id });
        clients.push(c);
        const topics = [];
        for (let i = 0; i < 50; i++) topics.push([`bootstrap/reply/${id}/${i}/${deep}`, 0], [`bootstrap/reply/${id}/w${i}`, 0], [`$share/g${i}/bootstrap/reply/${id}`, 0]);
        const codes = await c.subscribe(topics);
        asked += codes.length;
        grantedCount += codes.filter(granted).length;
      }
      await h.sleep(500);
      const growth = rssMiB(pid) - before;
      console.log(`# 200 clients asked for ${asked} subscriptions, ${grantedCount} granted; RSS ${before.toFixed(1)} -> ${(before + growth).toFixed(1)} MiB`);
      assert.ok(grantedCount <= 200 * 4, `${grantedCount} granted to 200 clients: more than four each`);
      assert.ok(growth < 16, `RSS grew by ${growth.toFixed(1)} MiB`);
      // and a device is served meanwhile
      assert.strictEqual((await env.rr('sub-0004')).reply.success, true);
    } finally {
      for (const c of clients) await c.disconnect().catch(() => {});
    }
  });
});
