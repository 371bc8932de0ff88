'use strict';
// The seed architecture, run locally: what an HTTPS Function Compute handler does today.
// POST {"deviceId"} → RegisterDevice through Alibaba's @alicloud/pop-core; on any failure
// QueryDeviceDetail; answer the triple. Benchmark baseline only: devices reach it over plain HTTP
// on loopback; it reaches the platform as given (bench/run.js: https://, pop-core's kept-alive
// agent, the bench's CA through NODE_EXTRA_CA_CERTS).
//   ALIBABA_CLOUD_ACCESS_KEY_ID=.. ALIBABA_CLOUD_ACCESS_KEY_SECRET=.. node function.js <port> <platform-endpoint> <product-key>
const http = require('http');
const RPCClient = require('@alicloud/pop-core').RPCClient;

const [port, endpoint, productKey] = process.argv.slice(2);
const client = new RPCClient({
  accessKeyId: process.env.ALIBABA_CLOUD_ACCESS_KEY_ID,
  accessKeySecret: process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET,
  endpoint: endpoint.replace(/\/$/, ''),
  apiVersion: '2018-01-20',
});
const opts = { method: 'POST', timeout: 5000 };

async function bootstrap(deviceId) {
  const params = { ProductKey: productKey, DeviceName: deviceId };
  try {
    const r = await client.request('RegisterDevice', params, opts);
    return r.Data;
  } catch (e) {
    const r = await client.request('QueryDeviceDetail', params, opts);
    return r.Data;
  }
}

http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', async () => {
    try {
      const { deviceId } = JSON.parse(body);
      const d = await bootstrap(deviceId);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ success: true, data: { ProductKey: d.ProductKey, DeviceName: d.DeviceName, DeviceSecret: d.DeviceSecret, IotId: d.IotId } }));
    } catch (e) {
      res.writeHead(502, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ success: false, code: 'platform_error', message: String(e.code || e.message) }));
    }
  });
}).listen(Number(port), '127.0.0.1', function () {
  console.log(JSON.stringify({ seed: 'listening', port: this.address().port }));
});
