// A proxyless gRPC xDS client in Node (@grpc/grpc-js with @grpc/grpc-js-xds), speaking
// the protocol of octoroll's xds/xdstest client so that the Go tests drive it the same
// way: the configuration is the JSON in OCTOROLL_XDSTEST_CLIENT (xdstest.ClientConfig),
// the xDS bootstrap is in GRPC_XDS_BOOTSTRAP_CONFIG. It sends unary
// grpc.testing.TestService/UnaryCall RPCs to the target and prints, every reportEvery,
// a JSON line {"epoch", "ok": {server_id: count}, "failed", "errors"} counting the RPCs
// started in the current window and finished. A "reset" line on stdin starts a new
// window; the end of stdin stops the client (exit 0). Any uncaught error exits 1.
'use strict';

const path = require('path');
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const xds = require('@grpc/grpc-js-xds');

const cfg = JSON.parse(process.env.OCTOROLL_XDSTEST_CLIENT || '{}');
if (!cfg.target) {
  console.error('nodeclient: OCTOROLL_XDSTEST_CLIENT has no target');
  process.exit(2);
}
// Durations in the Go config are nanoseconds.
const ms = (ns, def) => (ns > 0 ? ns / 1e6 : def);
const concurrency = cfg.concurrency > 0 ? cfg.concurrency : 4;
const rpcTimeout = ms(cfg.rpcTimeout, 5000);
const reportEvery = ms(cfg.reportEvery, 20);
const pause = cfg.rps > 0 ? (1000 * concurrency) / cfg.rps : 0;

xds.register();
const def = protoLoader.loadSync(path.join(__dirname, 'test.proto'), { keepCase: true });
const TestService = grpc.loadPackageDefinition(def).grpc.testing.TestService;
const client = new TestService(cfg.target, grpc.credentials.createInsecure());

let epoch = 0;
let window = { epoch: 0, ok: {}, failed: 0, errors: {} };
let stopped = false;

function record(started, serverId, err) {
  if (started !== epoch) return; // started in an earlier window
  if (err) {
    window.failed++;
    const msg = `${grpc.status[err.code] || err.code}: ${err.details || err.message}`;
    if (msg in window.errors || Object.keys(window.errors).length < 20) {
      window.errors[msg] = (window.errors[msg] || 0) + 1;
    }
    return;
  }
  window.ok[serverId] = (window.ok[serverId] || 0) + 1;
}

function emit() {
  process.stdout.write(JSON.stringify(window) + '\n');
}

function loop() {
  if (stopped) return;
  const started = epoch;
  const deadline = new Date(Date.now() + rpcTimeout);
  client.UnaryCall({ fill_server_id: true }, { deadline }, (err, resp) => {
    if (stopped) return;
    record(started, resp ? resp.server_id : '', err);
    if (pause > 0) setTimeout(loop, pause);
    else setImmediate(loop);
  });
}

const ticker = setInterval(emit, reportEvery);
for (let i = 0; i < concurrency; i++) loop();

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === 'reset') {
    epoch++;
    window = { epoch, ok: {}, failed: 0, errors: {} };
    emit();
  }
});
rl.on('close', () => {
  stopped = true;
  clearInterval(ticker);
  client.close();
  process.exit(0);
});

process.on('uncaughtException', (err) => {
  console.error('nodeclient: uncaught exception:', err && err.stack ? err.stack : err);
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  console.error('nodeclient: unhandled rejection:', err && err.stack ? err.stack : err);
  process.exit(1);
});
