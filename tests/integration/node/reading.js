#!/usr/bin/env node
// reading.js - MQTT.js in Node over WebSocket: connect to URL (ws:// or
// wss://), subscribe to TOPIC, wait for one message. Used by
// tests/integration/test_broker_mqttjs.py.
//
//   node reading.js URL TOPIC CAFILE|- TIMEOUT_S
//
// CAFILE: the CA that verifies a wss:// server ("-" for none). Prints one JSON
// line: {"topic": ..., "payload": ..., "retain": bool, "version": MQTT.js's}
// and exits 0, or {"error": "..."} and exits 1 (bounded by TIMEOUT_S).
'use strict';

const fs = require('fs');
const mqtt = require('mqtt');
const version = require('mqtt/package.json').version;

const [url, topic, cafile, timeoutS] = process.argv.slice(2);
const opts = { clientId: 'mqttjs-node-' + process.pid, reconnectPeriod: 0, connectTimeout: 5000 };
if (cafile !== '-') {
	const ca = fs.readFileSync(cafile);
	// The ws transport takes TLS options in wsOptions; the top level ones are kept too.
	opts.ca = ca;
	opts.rejectUnauthorized = true;
	opts.wsOptions = { ca, rejectUnauthorized: true };
}
let done = false;
const client = mqtt.connect(url, opts);

function finish(code, obj) {
	if (done)
		return;
	done = true;
	obj.version = version;
	console.log(JSON.stringify(obj));
	client.end(true, () => process.exit(code));
	setTimeout(() => process.exit(code), 1000).unref();
}

setTimeout(() => finish(1, { error: 'timeout' }), parseFloat(timeoutS) * 1000).unref();
client.on('connect', () => {
	client.subscribe(topic, { qos: 1 }, (err) => {
		if (err)
			finish(1, { error: 'subscribe: ' + err.message });
	});
});
client.on('message', (t, payload, packet) => {
	finish(0, { topic: t, payload: payload.toString(), retain: packet.retain });
});
client.on('error', (err) => finish(1, { error: err.message }));
client.on('close', () => finish(1, { error: 'closed' }));
