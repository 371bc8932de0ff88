'use strict';
// Proxies from the environment (issue 18 item 6): with http_proxy, https_proxy, HTTPS_PROXY and
// ALL_PROXY set in the broker's environment, nothing may reach that proxy: not the metadata
// service's token call, not the credentials URI, not a signed platform call (its Authorization
// header included). A proxy is used only when plugin_opt_https_proxy names one.
const test = require('node:test');
const assert = require('assert');
const net = require('net');
const h = require('./lib/harness');

// A listening socket that records what arrives and never answers.
async function recorder() {
  const seen = { connections: 0, bytes: 0 };
  const sockets = new Set();
  const server = net.createServer((s) => {
    seen.connections++;
    sockets.add(s);
    s.on('data', (d) => { seen.bytes += d.length; });
    s.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { seen, url, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

const proxyEnv = (url) => ({ http_proxy: url, https_proxy: url, HTTPS_PROXY: url, ALL_PROXY: url, all_proxy: url });
const emulator = { credentials: { roleName: 'ProxyEcsRole', ttlS: 3600 } };

async function assertServed(env, id, proxy) {
  const r = await env.rr(id, { timeoutS: 20 });
  assert.strictEqual(r.reply && r.reply.success, true, `${id}: ${JSON.stringify(r.reply && r.reply.code)}; the proxy received ` +
    `${proxy.seen.connections} connection(s), ${proxy.seen.bytes} bytes`);
}

test('proxies in the environment are never used: ECS metadata (IMDSv2), signed platform calls', async () => {
  const proxy = await recorder();
  try {
    await h.withEnv({ credentials: 'none', emulator, brokerEnv: { ...proxyEnv(proxy.url), ALIBABA_CLOUD_ECS_METADATA: 'ProxyEcsRole' },
      pluginOptions: { ecs_metadata_endpoint: 'http://127.0.0.1:$EMUPORT' } }, async (env) => {
      await assertServed(env, 'dev-proxy-imds-1', proxy);
      await assertServed(env, 'dev-proxy-imds-2', proxy);
      const c = env.emu.credentialStats().calls;
      assert.ok(c.metadataToken >= 1 && c.metadataCredentials >= 1, JSON.stringify(c));
    });
    assert.deepStrictEqual(proxy.seen, { connections: 0, bytes: 0 }, 'nothing reached the proxy');
  } finally {
    proxy.close();
  }
});

test('proxies in the environment are never used: credentials URI, signed platform calls with STS', async () => {
  const proxy = await recorder();
  try {
    await h.withEnv({ credentials: 'none', emulator,
      brokerEnv: { ...proxyEnv(proxy.url), ALIBABA_CLOUD_CREDENTIALS_URI: 'http://127.0.0.1:$EMUPORT/_credentials' } }, async (env) => {
      await assertServed(env, 'dev-proxy-uri-1', proxy);
      assert.ok(env.emu.credentialStats().calls.credentialsUri >= 1);
    });
    assert.deepStrictEqual(proxy.seen, { connections: 0, bytes: 0 }, 'nothing reached the proxy');
  } finally {
    proxy.close();
  }
});

// A CONNECT proxy (HTTP/1.1): records the CONNECT targets and every byte it relays to the server.
async function connectProxy() {
  const http = require('http');
  const seen = { connects: [], relayed: Buffer.alloc(0) };
  const sockets = new Set();
  const server = http.createServer((req, res) => { res.writeHead(405); res.end(); });
  server.on('connect', (req, client, head) => {
    seen.connects.push(req.url);
    const [host, port] = req.url.split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      client.on('data', (d) => { seen.relayed = Buffer.concat([seen.relayed, d]); upstream.write(d); });
      upstream.pipe(client);
    });
    for (const s of [client, upstream]) { sockets.add(s); s.on('error', () => {}); }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { seen, url: `http://127.0.0.1:${server.address().port}`, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

test('plugin_opt_https_proxy: https:// platform calls go through a CONNECT tunnel that never sees the signed bytes; the environment\'s proxy still gets nothing', async () => {
  const dir = h.makeWorkdir();
  h.giveToBroker(dir);
  const envProxy = await recorder();
  const proxy = await connectProxy();
  try {
    const pki = h.makePki(dir);
    const tls = pki.leaf('platform', { cn: 'platform', ip: ['127.0.0.1'], dns: ['localhost'] });
    await h.withEnv({ emulator: { tls }, brokerEnv: proxyEnv(envProxy.url), pluginOptions: { ca_file: pki.ca, https_proxy: proxy.url } }, async (env) => {
      await assertServed(env, 'dev-proxy-conn-1', envProxy);
      assert.ok(env.emu.stats().requests >= 1);
    });
    assert.ok(proxy.seen.connects.length >= 1, 'the platform calls went through the configured proxy');
    assert.ok(proxy.seen.connects.every((t) => /^127\.0\.0\.1:\d+$/.test(t)), JSON.stringify(proxy.seen.connects));
    const relayed = proxy.seen.relayed.toString('latin1');
    assert.ok(relayed.length > 0);
    for (const plain of ['ACS3-HMAC-SHA256', 'x-acs-', 'dev-proxy-conn-1', 'Authorization']) {
      assert.ok(!relayed.includes(plain), `the proxy saw "${plain}" in clear`);
    }
    assert.deepStrictEqual(envProxy.seen, { connections: 0, bytes: 0 }, 'nothing reached the environment\'s proxy');
  } finally {
    proxy.close();
    envProxy.close();
    require('fs').rmSync(dir, { recursive: true, force: true });
  }
});
