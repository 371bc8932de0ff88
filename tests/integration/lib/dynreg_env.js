'use strict';
// A broker for Link SDK dynamic registration tests: harness.startEnv with the plugin's dynreg
// option on, a TLS listener (a throw-away CA and a server certificate for 127.0.0.1 and
// localhost) beside the plain one, and the audit trail in $DIR/audit.log.
//   const env = await dynregEnv({ pluginOptions, emulator, ... });   // startEnv's options
//   env.tlsPort, env.ca (PEM), env.caFile, env.register(deviceName, options), env.device(...)
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const h = require('./harness');
const dr = require('./dynreg_client');

// The plugin's options that turn dynreg on for the TLS listener. Kept in this one place.
function dynregOptions(tlsPort) {
  return { dynreg_mqtt: 'on', dynreg_tls_ports: tlsPort };
}

// An RSA CA and server certificate for localhost and 127.0.0.1 (the Link SDK's bundled mbedtls
// offers RSA key exchange only), made with the openssl CLI in dir.
function rsaPki(dir) {
  const ossl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const f = (name) => path.join(dir, name);
  ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=dynreg RSA test CA', '-keyout', f('rsa-ca.key'), '-out', f('rsa-ca.crt')]);
  fs.writeFileSync(f('rsa.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  ossl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', f('rsa-server.key'), '-out', f('rsa-server.csr')]);
  ossl(['x509', '-req', '-in', f('rsa-server.csr'), '-CA', f('rsa-ca.crt'), '-CAkey', f('rsa-ca.key'), '-CAcreateserial', '-days', '2',
    '-extfile', f('rsa.ext'), '-out', f('rsa-server.crt')]);
  for (const n of ['rsa-ca.crt', 'rsa-server.crt', 'rsa-server.key']) h.giveToBroker(f(n));
  return { ca: f('rsa-ca.crt'), server: { cert: f('rsa-server.crt'), key: f('rsa-server.key') } };
}

// rsa: an RSA certificate instead of the harness's EC one
async function dynregEnv({ pluginOptions = {}, extraConfig = '', rsa = false, ...options } = {}) {
  const pkiDir = h.makeWorkdir();
  h.giveToBroker(pkiDir);
  const pki = rsa ? rsaPki(pkiDir) : h.makePki(pkiDir);
  const server = rsa ? pki.server : pki.leaf('server', { cn: 'localhost', dns: ['localhost'], ip: ['127.0.0.1'] });
  const tlsPort = await h.freePort();
  const tlsListener = [`listener ${tlsPort} 127.0.0.1`, `certfile ${server.cert}`, `keyfile ${server.key}`].join('\n');
  let env;
  try {
    env = await h.startEnv({
      ...options,
      extraConfig: [extraConfig, tlsListener].filter(Boolean).join('\n'),
      pluginOptions: { audit_file: '$DIR/audit.log', ...dynregOptions(tlsPort), ...pluginOptions },
    });
  } catch (e) {
    fs.rmSync(pkiDir, { recursive: true, force: true });
    throw e;
  }
  // a dynreg CONNECT is served once the plugin has checked that the port answers TLS
  if (!pluginOptions.dynreg_tls_ports) {
    try {
      await h.waitForLog(env, new RegExp(`dynreg: port ${tlsPort} answers TLS`));
    } catch (e) {
      await env.stop();
      fs.rmSync(pkiDir, { recursive: true, force: true });
      throw e;
    }
  }
  const ca = fs.readFileSync(pki.ca);
  const stop = env.stop.bind(env);
  return Object.assign(env, {
    tlsPort, ca, caFile: pki.ca, pkiDir,
    // one dynreg attempt over TLS for deviceName, signed with the product's secret unless told
    register(deviceName, { productKey = env.productKey, productSecret, port = tlsPort, ...rest } = {}) {
      const secret = productSecret || (env.products ? env.productSecrets[productKey] : env.productSecret);
      return dr.register(port, { ca, servername: 'localhost', productKey, deviceName, productSecret: secret, ...rest });
    },
    // a device that retries as the SDK demo run in a loop would
    dynregDevice(deviceName, { productKey = env.productKey, ...rest } = {}, loop = {}) {
      const secret = env.products ? env.productSecrets[productKey] : env.productSecret;
      return dr.device(tlsPort, { ca, servername: 'localhost', productKey, deviceName, productSecret: secret, ...rest }, loop);
    },
    audit() {
      const f = path.join(env.dir, 'audit.log');
      return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    },
    async stop() {
      try {
        await stop();
      } finally {
        fs.rmSync(pkiDir, { recursive: true, force: true });
      }
    },
  });
}

module.exports = { dynregEnv, dynregOptions };
