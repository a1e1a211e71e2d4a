// cdp_status.js - drives a headless Chromium (already started with
// --remote-debugging-port) through the DevTools protocol: opens the status
// page, waits until the live value of one point changes from what it first
// showed (the test changes it meanwhile), reads the DOM and saves a
// screenshot. Node 20's WebSocket needs --experimental-websocket.
//
// usage: node --experimental-websocket cdp_status.js DEVTOOLS_PORT PAGE_URL POINT SCREENSHOT
//        TIMEOUT_S
// Prints progress lines "first VALUE" (when the page shows the point), then
// one JSON line with what the DOM says.
"use strict";
const fs = require("fs");

const [port, url, point, shot, timeoutS] = process.argv.slice(2);
const deadline = Date.now() + 1000 * Number(timeoutS || 30);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function target() {
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/json/new?about:blank`, { method: "PUT" });
      if (r.ok) return await r.json();
    } catch (e) { /* not up yet */ }
    await sleep(200);
  }
  throw new Error("no DevTools endpoint");
}

async function main() {
  const t = await target();
  const ws = new WebSocket(t.webSocketDebuggerUrl);
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  };
  const send = (method, params = {}) => new Promise((res) => {
    pending.set(++id, res);
    ws.send(JSON.stringify({ id, method, params }));
  });
  const evaluate = async (expr) => {
    const r = await send("Runtime.evaluate", { expression: expr, returnByValue: true });
    return r.result && r.result.result ? r.result.result.value : undefined;
  };
  // A phone-sized viewport: the page must be readable there.
  await send("Emulation.setDeviceMetricsOverride",
    { width: 390, height: 844, deviceScaleFactor: 2, mobile: true });
  await send("Page.enable");
  await send("Page.navigate", { url });
  const cell = `(() => { const r = document.querySelector('tr[data-point="${point}"]');
    return r ? r.children[1].textContent : null; })()`;
  let first = null, now = null;
  while (Date.now() < deadline && first === null) {
    first = await evaluate(cell);
    if (first === null) await sleep(200);
  }
  console.log("first " + JSON.stringify(first));
  while (Date.now() < deadline) {
    now = await evaluate(cell);
    if (now !== null && now !== first) break;
    await sleep(200);
  }
  const dom = await evaluate(`(() => ({
    title: document.title,
    gateway: document.getElementById("gw").textContent,
    meta: document.getElementById("meta").textContent,
    uplink: document.getElementById("up").textContent,
    queue: document.getElementById("q").textContent,
    devices: [...document.querySelectorAll("section[data-device]")].map((s) => ({
      name: s.dataset.device,
      state: s.querySelector("h2 .s").textContent,
      points: [...s.querySelectorAll("tr[data-point]")].map((r) =>
        [...r.children].map((c) => c.textContent)),
    })),
    updates: Number(document.body.dataset.updates || 0),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    agent: navigator.userAgent,
  }))()`);
  const png = await send("Page.captureScreenshot", { format: "png" });
  if (png.result && png.result.data) fs.writeFileSync(shot, Buffer.from(png.result.data, "base64"));
  console.log(JSON.stringify({ first, now, dom }));
  ws.close();
}

main().then(() => process.exit(0), (e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});
