'use strict';
// What the plugin puts on the wire, compared byte for byte with what Alibaba's official SDKs send
// for the same inputs: @alicloud/iot20180120 on @alicloud/openapi-client (V3, ACS3-HMAC-SHA256) and
// @alicloud/pop-core (signature 1.0). Both are captured raw on a plain TCP listener (node `net`, no
// HTTP parser that would merge or drop anything). The plugin side is tests/wire/wire_driver.c: one
// call built by platform__call_request() and sent by the plugin's own http.c (libcurl), as the
// worker does. Every action of the action table; V3 and V1; with and without an STS token and an
// IotInstanceId; DeviceNames with every legal character, 32 long, and the largest batches.
//
// Set aside (never compared): the nonce and the date (fixed by neither side; format checked),
// User-Agent, Connection, and the headers only an SDK sends about itself (x-acs-credentials-provider
// in V3, signed; x-sdk-client, x-acs-action and x-acs-version in pop-core's signature 1.0, unsigned).
// Deliberate differences (README, "What goes on the wire"): parameters in sorted (canonical) order;
// signature 1.0 carries RegionId (documented as required; pop-core leaves it out); V3
// BatchCheckDeviceNames carries its parameters in a signed form body, not a ~490 KB query.
const test = require('node:test');
const assert = require('assert');
const net = require('net');
const path = require('path');
const { execFile } = require('child_process');
const { createEmulator, percentEncode, sign, canonicalRequestV3, signV3, sha256Hex, parseForm } = require('../emulator/emulator.js');

const SEED = path.join(__dirname, '../../bench/seed/node_modules');
const Iot = require(path.join(SEED, '@alicloud/iot20180120'));
const { Config } = require(path.join(SEED, '@alicloud/openapi-client'));
const RPCClient = require(path.join(SEED, '@alicloud/pop-core')).RPCClient;

const DRIVER = path.join(process.env.BOOTSTRAP_BUILD_DIR || path.join(__dirname, '../../build-test'), 'tests', 'wire_driver');
const KEY_ID = 'LTAIwire';
const SECRET = 'wire-secret-value';
const TOKEN = 'CAIS+wire/token=value';
const PK = 'a1WireProd';
const INSTANCE = 'iot-cn-wire0001';
const APPLY_ID = 1295006;

// 32 characters (the longest legal), every legal character among the names: letters, digits, - _ @ . :
const LEGAL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_@.:';
function name32(i) {
  const tag = 'n' + i + ':';
  let s = tag;
  for (let k = 0; s.length < 32; k++) s += LEGAL[(i * 7 + k) % LEGAL.length];
  return s;
}
const ONE = 'AA:BB:CC:DD:EE:FF@dev-x_y.z:0123'; // a MAC address and every special character, 32 long
assert.strictEqual(ONE.length, 32);
const names = (n) => Array.from({ length: n }, (_, i) => name32(i + 1));
assert.ok([...LEGAL].every((c) => names(100).some((x) => x.includes(c))), 'every legal character is used');

// ---- raw capture ----
function captureServer() {
  const requests = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        const len = m ? Number(m[1]) : 0;
        if (buf.length < end + 4 + len) return;
        requests.push(buf.subarray(0, end + 4 + len));
        buf = buf.subarray(end + 4 + len);
        const body = '{"RequestId":"wire","Success":true,"Data":{}}';
        sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ' + body.length + '\r\n\r\n' + body);
      }
    });
    sock.on('error', () => {});
  });
  // the SDKs keep their connections alive: closed here, or the test would not end
  const close = () => { for (const s of sockets) s.destroy(); server.close(); };
  return { server, requests, close };
}

// A raw request: method, path, raw query, header lines in order (name as sent, value), raw body.
function parseRaw(raw) {
  const end = raw.indexOf('\r\n\r\n');
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const [method, target, version] = lines[0].split(' ');
  assert.strictEqual(version, 'HTTP/1.1');
  const q = target.indexOf('?');
  const headers = lines.slice(1).map((l) => { const i = l.indexOf(':'); return [l.slice(0, i), l.slice(i + 1).trim()]; });
  return { method, path: q < 0 ? target : target.slice(0, q), query: q < 0 ? '' : target.slice(q + 1), headers,
    body: raw.subarray(end + 4).toString('latin1') };
}
const header = (r, name) => { const h = r.headers.filter(([n]) => n.toLowerCase() === name); return h.length ? h[0][1] : undefined; };
// name -> value, both as sent (encoded): the escapes themselves are compared
function rawParams(s) {
  const out = new Map();
  for (const part of s ? s.split('&') : []) {
    const i = part.indexOf('=');
    const k = i < 0 ? part : part.slice(0, i);
    assert.ok(!out.has(k), 'parameter ' + k + ' sent once');
    out.set(k, i < 0 ? '' : part.slice(i + 1));
  }
  return out;
}

function runDriver(spec) {
  return new Promise((resolve, reject) => {
    const child = execFile(DRIVER, { env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' }, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => (err ? reject(new Error('wire_driver: ' + err.message + ' ' + stderr)) : resolve(stdout)));
    child.stdin.end(JSON.stringify(spec));
  });
}

// The cases: every action with its inputs, as the driver and as each SDK takes them.
const ACTIONS = [
  { index: 0, action: 'RegisterDevice', names: [ONE],
    v3: (c, o) => c.registerDevice(new Iot.RegisterDeviceRequest({ productKey: PK, deviceName: ONE, ...o })),
    v1: () => ({ ProductKey: PK, DeviceName: ONE }) },
  { index: 1, action: 'QueryDeviceDetail', names: [ONE],
    v3: (c, o) => c.queryDeviceDetail(new Iot.QueryDeviceDetailRequest({ productKey: PK, deviceName: ONE, ...o })),
    v1: () => ({ ProductKey: PK, DeviceName: ONE }) },
  { index: 2, action: 'BatchQueryDeviceDetail', names: names(100),
    v3: (c, o) => c.batchQueryDeviceDetail(new Iot.BatchQueryDeviceDetailRequest({ productKey: PK, deviceName: names(100), ...o })),
    v1: () => ({ ProductKey: PK, ...Object.fromEntries(names(100).map((n, i) => ['DeviceName.' + (i + 1), n])) }) },
  { index: 3, action: 'BatchCheckDeviceNames', names: names(10000), formBody: true,
    v3: (c, o) => c.batchCheckDeviceNames(new Iot.BatchCheckDeviceNamesRequest({ productKey: PK, deviceName: names(10000), ...o })),
    v1: () => ({ ProductKey: PK, ...Object.fromEntries(names(10000).map((n, i) => ['DeviceName.' + (i + 1), n])) }) },
  { index: 4, action: 'QueryBatchRegisterDeviceStatus', apply: true,
    v3: (c, o) => c.queryBatchRegisterDeviceStatus(new Iot.QueryBatchRegisterDeviceStatusRequest({ productKey: PK, applyId: APPLY_ID, ...o })),
    v1: () => ({ ProductKey: PK, ApplyId: String(APPLY_ID) }) },
  { index: 5, action: 'BatchRegisterDeviceWithApplyId', apply: true,
    v3: (c, o) => c.batchRegisterDeviceWithApplyId(new Iot.BatchRegisterDeviceWithApplyIdRequest({ productKey: PK, applyId: APPLY_ID, ...o })),
    v1: () => ({ ProductKey: PK, ApplyId: String(APPLY_ID) }) },
  { index: 6, action: 'QueryPageByApplyId', apply: true, page: 3, noProduct: true,
    v3: (c, o) => c.queryPageByApplyId(new Iot.QueryPageByApplyIdRequest({ applyId: APPLY_ID, pageSize: 50, currentPage: 3, ...o })),
    v1: () => ({ ApplyId: String(APPLY_ID), PageSize: '50', CurrentPage: '3' }) },
];

function driverSpec(port, a, sig, sts, instance) {
  return { endpoint: `http://127.0.0.1:${port}`, signature: sig, key_id: KEY_ID, secret: SECRET, token: sts ? TOKEN : undefined,
    instance: instance ? INSTANCE : undefined, region: 'cn-shanghai', action: a.index, product_key: PK, names: a.names || [],
    apply_id: a.apply ? String(APPLY_ID) : undefined, page: a.page || 0, time: Math.floor(Date.now() / 1000) };
}

// Every header line of the plugin's request: once per name, none of curl's own additions.
function assertHeadersClean(r, what) {
  const seen = new Set();
  for (const [n] of r.headers) {
    assert.ok(!seen.has(n.toLowerCase()), `${what}: header ${n} sent once`);
    seen.add(n.toLowerCase());
  }
  for (const n of ['expect', 'transfer-encoding', 'proxy-authorization']) assert.ok(!seen.has(n), `${what}: no ${n}`);
  if (seen.has('accept')) assert.strictEqual(header(r, 'accept'), 'application/json', `${what}: no Accept of curl's own`);
  return seen;
}

// V3: the signature recomputed from the bytes received (the query as it arrived, not re-encoded)
function assertV3Verifies(r, what) {
  const m = /^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})$/.exec(header(r, 'authorization'));
  assert.ok(m, what + ': Authorization');
  const signed = m[2].split(';');
  const h = Object.fromEntries(signed.map((n) => [n, header(r, n)]));
  const canonical = canonicalRequestV3(r.method, r.path, r.query, h, signed, sha256Hex(Buffer.from(r.body, 'latin1')));
  assert.strictEqual(signV3(canonical, SECRET), m[3], what + ': the signature is over exactly what was sent');
  return { keyId: m[1], signed };
}

const SET_ASIDE_V3 = new Set(['user-agent', 'connection', 'x-acs-date', 'x-acs-signature-nonce', 'authorization', 'x-acs-credentials-provider']);
// V1's Content-Length: the bodies differ by RegionId and the nonce's length (the parameters are compared)
const SET_ASIDE_V1 = new Set(['user-agent', 'connection', 'x-sdk-client', 'x-acs-action', 'x-acs-version', 'content-length']);

function compareV3(a, ours, sdk, what) {
  assert.strictEqual(ours.method, sdk.method, what + ': method');
  assert.strictEqual(ours.path, sdk.path, what + ': path');
  const seen = assertHeadersClean(ours, what);
  const mine = assertV3Verifies(ours, what);
  const theirs = assertV3Verifies(sdk, what + ' (SDK)');
  assert.strictEqual(mine.keyId, theirs.keyId);
  // the query: in canonical form (sorted, upper-case escapes), written byte for byte
  const sorted = ours.query.split('&').filter((x) => x).sort((x, y) => { const p = x.split('=')[0]; const q = y.split('=')[0]; return p < q ? -1 : p > q ? 1 : 0; });
  assert.strictEqual(ours.query, sorted.join('&'), what + ': the query in its canonical order');
  assert.doesNotMatch(ours.query, /%[0-9A-F]?[a-f]/, what + ': no lower-case escape');
  // parameters, by name, as encoded on the wire
  const sdkParams = rawParams(sdk.query);
  const ourParams = rawParams(ours.query);
  if (a.formBody) {
    // deliberate: the names go in a signed form body (the SDK's query would be a ~490 KB URL)
    assert.strictEqual(header(ours, 'content-type'), 'application/x-www-form-urlencoded', what + ': the body says what it is');
    assert.ok(mine.signed.includes('content-type'), what + ': content-type signed');
    assert.strictEqual(header(ours, 'x-acs-content-sha256'), sha256Hex(Buffer.from(ours.body, 'latin1')));
    for (const [k, v] of rawParams(ours.body)) {
      assert.ok(!ourParams.has(k), what + ': ' + k + ' in the query and the body');
      ourParams.set(k, v);
    }
    assert.ok(sdk.query.length > 400000, `${what}: the SDK's URL for 10 000 names is ${sdk.query.length} bytes`);
  } else {
    assert.strictEqual(ours.body, '', what + ': no body');
    assert.strictEqual(header(ours, 'content-type'), undefined, what + ': no Content-Type (curl adds none)');
  }
  assert.deepStrictEqual([...ourParams.entries()].sort(), [...sdkParams.entries()].sort(), what + ': parameters, name by name, encoded alike');
  // headers, one by one
  const sdkNames = new Set(sdk.headers.map(([n]) => n.toLowerCase()));
  for (const n of seen) {
    if (n === 'content-type' && a.formBody) continue;
    if (n === 'content-length' && a.formBody) continue;
    assert.ok(sdkNames.has(n) || n === 'user-agent', `${what}: header ${n} is one the SDK sends too`);
  }
  for (const n of sdkNames) {
    if (SET_ASIDE_V3.has(n)) continue;
    if (a.formBody && (n === 'x-acs-content-sha256' || n === 'content-length')) continue;
    assert.strictEqual(header(ours, n), header(sdk, n), `${what}: header ${n}`);
  }
  assert.deepStrictEqual(mine.signed.filter((n) => n !== 'content-type'), theirs.signed.filter((n) => n !== 'x-acs-credentials-provider'),
    what + ': the same headers signed');
  assert.match(header(ours, 'x-acs-date'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(header(ours, 'x-acs-signature-nonce'), /^[0-9a-f-]{32,36}$/);
}

function compareV1(a, ours, sdk, what, sts, instance) {
  assert.strictEqual(ours.method, sdk.method, what + ': method');
  assert.strictEqual(ours.path, sdk.path, what + ': path');
  assert.strictEqual(ours.query, '', what + ': nothing in the query');
  const seen = assertHeadersClean(ours, what);
  const ourParams = rawParams(ours.body);
  const sdkParams = rawParams(sdk.body);
  // the signature, recomputed from the body received
  const decoded = parseForm(ours.body);
  assert.strictEqual(sign('POST', decoded, SECRET), decoded.Signature, what + ': the signature is over what was sent');
  assert.strictEqual(sign('POST', parseForm(sdk.body), SECRET), parseForm(sdk.body).Signature, what + ': (SDK) signature');
  assert.strictEqual(ours.body.split('&').slice(0, -1).join('&'),
    ours.body.split('&').slice(0, -1).sort((x, y) => { const p = x.split('=')[0]; const q = y.split('=')[0]; return p < q ? -1 : p > q ? 1 : 0; }).join('&'),
    what + ': canonical order');
  assert.doesNotMatch(ours.body, /%[0-9A-F]?[a-f]/, what + ': no lower-case escape');
  for (const k of ['Signature', 'SignatureNonce', 'Timestamp']) { ourParams.delete(k); sdkParams.delete(k); }
  assert.strictEqual(ourParams.get('RegionId'), 'cn-shanghai', 'deliberate: RegionId, documented as required');
  ourParams.delete('RegionId');
  if (instance) assert.strictEqual(ourParams.get('IotInstanceId'), INSTANCE);
  if (sts) assert.strictEqual(ourParams.get('SecurityToken'), percentEncode(TOKEN));
  assert.deepStrictEqual([...ourParams.entries()].sort(), [...sdkParams.entries()].sort(), what + ': parameters, name by name, encoded alike');
  const sdkNames = new Set(sdk.headers.map(([n]) => n.toLowerCase()));
  for (const n of seen) assert.ok(sdkNames.has(n), `${what}: header ${n} is one pop-core sends too`);
  for (const n of sdkNames) {
    if (SET_ASIDE_V1.has(n)) continue;
    assert.strictEqual(header(ours, n), header(sdk, n), `${what}: header ${n}`);
  }
}

test('the plugin\'s requests match the official SDKs\' byte for byte: every action, V3 and V1, STS and instance or not', async () => {
  const cap = captureServer();
  await new Promise((r) => cap.server.listen(0, '127.0.0.1', r));
  const port = cap.server.address().port;
  const last = async (fn) => {
    const n = cap.requests.length;
    await fn();
    assert.strictEqual(cap.requests.length, n + 1, 'one request');
    return parseRaw(cap.requests[n]);
  };
  let compared = 0;
  try {
    for (const sig of ['v3', 'v1']) {
      for (const sts of [false, true]) {
        for (const instance of [false, true]) {
          for (const a of ACTIONS) {
            const what = `${a.action} ${sig}${sts ? ' sts' : ''}${instance ? ' instance' : ''}`;
            const ours = await last(() => runDriver(driverSpec(port, a, sig, sts, instance)));
            let sdk;
            if (sig === 'v3') {
              const client = new Iot.default(new Config({ accessKeyId: KEY_ID, accessKeySecret: SECRET, securityToken: sts ? TOKEN : undefined,
                endpoint: `127.0.0.1:${port}`, protocol: 'http', regionId: 'cn-shanghai' }));
              sdk = await last(() => a.v3(client, instance ? { iotInstanceId: INSTANCE } : {}).catch(() => {}));
              compareV3(a, ours, sdk, what);
            } else {
              const client = new RPCClient({ accessKeyId: KEY_ID, accessKeySecret: SECRET, securityToken: sts ? TOKEN : undefined,
                endpoint: `http://127.0.0.1:${port}`, apiVersion: '2018-01-20' });
              const params = { ...a.v1(), ...(instance ? { IotInstanceId: INSTANCE } : {}) };
              sdk = await last(() => client.request(a.action, params, { method: 'POST' }).catch(() => {}));
              compareV1(a, ours, sdk, what, sts, instance);
            }
            compared++;
          }
        }
      }
    }
  } finally {
    cap.close();
  }
  assert.strictEqual(compared, 2 * 2 * 2 * ACTIONS.length);
});

test('every action, as the plugin sends it, passes the strict emulator: 10 000 names in a form body, names with every legal character', async () => {
  const emu = createEmulator({ accessKeys: { [KEY_ID]: { secret: SECRET } }, products: [PK], checkDurationMs: 10, createDurationMs: 10 });
  const port = await emu.listen(0);
  try {
    for (const sig of ['v3', 'v1']) {
      for (const a of ACTIONS) {
        const out = (await runDriver(driverSpec(port, a, sig, false, false))).split('\n');
        const body = JSON.parse(out[1]);
        // the gateway's checks all passed: a business answer (an ApplyId the emulator never gave is
        // the platform's own refusal), never a gateway or strict refusal
        assert.ok(body.Success === true || /^iot\./.test(body.Code), `${a.action} ${sig}: ${out[0]} ${body.Code}`);
      }
    }
    const st = emu.stats();
    assert.deepStrictEqual(st.strict, {}, 'nothing refused by the strict checks');
    assert.strictEqual(st.signatureFailures, 0);
    assert.strictEqual(st.batch.maxDevicesServed.BatchCheckDeviceNames, 10000);
  } finally {
    await emu.close();
  }
});
