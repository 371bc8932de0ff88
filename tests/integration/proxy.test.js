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
