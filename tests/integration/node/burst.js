#!/usr/bin/env node
// burst.js - MQTT.js (npm `mqtt`, the client Node-RED uses) publishing QoS 1
// messages in one burst with its default options, as a user's script would:
// every publish() is called at once, nothing waits for a PUBACK before the
// next. Used by tests/integration/test_acks_real_clients.py.
//
//   node burst.js PORT PROTOCOL(4|5) COUNT TOPIC_PREFIX TOPICS TIMEOUT_S
//
// Message i goes to TOPIC_PREFIX/(i % TOPICS) with payload "i". Prints one
// JSON line: {"acked": n, "errors": n, "ms": burst time until the last
// PUBACK, "disconnect": reason code of a DISCONNECT from the broker or null,
// "closed": the connection closed before the end, "version": MQTT.js's}.
// Exits 0 when every message was acknowledged, 1 otherwise (bounded by
// TIMEOUT_S).
'use strict';

const mqtt = require('mqtt');
const version = require('mqtt/package.json').version;

const [port, proto, count, prefix, topics, timeoutS] = process.argv.slice(2);
const n = parseInt(count, 10);
const nTopics = parseInt(topics, 10);
const result = { acked: 0, errors: 0, ms: null, disconnect: null, closed: false, version };
let done = false;
let t0 = 0;

function finish(code) {
	if (done)
		return;
	done = true;
	console.log(JSON.stringify(result));
	client.end(true, () => process.exit(code));
	setTimeout(() => process.exit(code), 1000).unref();
}

// Defaults, except: no reconnect (a dropped connection must show, not be
// hidden by resending) and the protocol version under test.
const client = mqtt.connect({
	host: '127.0.0.1',
	port: parseInt(port, 10),
	protocolVersion: parseInt(proto, 10),
	reconnectPeriod: 0,
	clientId: 'burst-' + process.pid,
});

client.on('disconnect', (pkt) => {
	result.disconnect = pkt.reasonCode === undefined ? 0 : pkt.reasonCode;
});
client.on('close', () => {
	if (!done && result.acked < n) {
		result.closed = true;
		finish(1);
	}
});
client.on('error', () => {
	result.errors++;
});

client.on('connect', () => {
	t0 = Date.now();
	for (let i = 0; i < n; i++) {
		client.publish(prefix + '/' + (i % nTopics), String(i), { qos: 1 }, (err) => {
			if (err) {
				result.errors++;
				return;
			}
			result.acked++;
			if (result.acked === n) {
				result.ms = Date.now() - t0;
				finish(0);
			}
		});
	}
});

setTimeout(() => finish(1), parseFloat(timeoutS) * 1000).unref();
