// Drives headless Chromium (playwright-core, installed by `npm ci --prefix web`) through the
// control plane's cluster page: opens BASE/cluster, waits until the page has polled
// /api/cluster a few times and the cluster's edges report at least --min-viewers viewers,
// then reads what the page shows (node rows, stream rows, chart data and drawn pixels) and
// takes a screenshot. Then checks the page's answer to a 401 twice (without a token, and with
// one in the URL fragment, which must go out as `Authorization: Bearer`), by answering
// /api/cluster with 401 from the browser itself.
// Prints one JSON line; the Rust test (tests/tests/e2e/cluster_page.rs) makes the assertions.
// Exits non-zero only if the browser could not be driven at all.
//
// usage: node cluster.mjs --web-dir DIR --base URL --out DIR [--chromium PATH]
//                         [--min-viewers N] [--min-polls N] [--timeout-ms N]

import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

function parseArgs(argv) {
  const args = { chromium: '/usr/bin/chromium', minViewers: 0, minPolls: 3, timeoutMs: 30000 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error('missing value for ' + argv[i]);
    args[key] = argv[i + 1];
  }
  for (const required of ['webDir', 'base', 'out']) {
    if (!args[required]) throw new Error('missing --' + required.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()));
  }
  for (const n of ['minViewers', 'minPolls', 'timeoutMs']) args[n] = Number(args[n]);
  return args;
}

const args = parseArgs(process.argv.slice(2));
const require = createRequire(join(resolve(args.webDir), 'package.json'));
const { chromium } = require('playwright-core');

// What the page shows, read from its DOM and its `window.sluiceCluster` state.
function sample() {
  const s = window.sluiceCluster;
  const nodes = [...document.querySelectorAll('#nodes tr')].map((tr) => {
    const idCell = tr.querySelector('td.node-id');
    const viewers = tr.querySelector('td.viewers');
    return {
      id: tr.dataset.node,
      role: tr.dataset.role,
      idText: idCell ? idCell.textContent : null,
      idChildElements: idCell ? idCell.children.length : -1,
      viewers: viewers ? Number(viewers.dataset.value) : null,
      meters: tr.querySelectorAll('meter').length,
      text: tr.textContent,
    };
  });
  const streams = [...document.querySelectorAll('#streams tr')].map((tr) => ({
    key: tr.dataset.stream,
    nameText: tr.querySelector('td.stream-name').textContent,
    viewers: Number(tr.querySelector('td.viewers').dataset.value),
    perNode: Object.fromEntries(
      [...tr.querySelectorAll('li[data-node]')].map((li) => [li.dataset.node, Number(li.dataset.value)])
    ),
    links: [...tr.querySelectorAll('a')].map((a) => a.getAttribute('href')),
  }));
  // Pixels of a series' stroke colour on a chart's canvas: the line has been drawn.
  function strokePixels(id, rgb) {
    const canvas = document.querySelector('#' + id + ' canvas');
    if (!canvas) return -1;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0 && Math.abs(data[i] - rgb[0]) < 24 && Math.abs(data[i + 1] - rgb[1]) < 24 && Math.abs(data[i + 2] - rgb[2]) < 24) n += 1;
    }
    return n;
  }
  return {
    polls: s.polls,
    status: s.status,
    errors: s.errors,
    chartsMissing: s.chartsMissing || null,
    api: s.last,
    nodes,
    streams,
    chartPoints: s.charts.viewers ? s.charts.viewers.data[0].length : 0,
    egressPoints: s.charts.egress ? s.charts.egress.data[0].length : 0,
    viewersStroke: strokePixels('chart-viewers', [31, 119, 180]),
    egressStroke: strokePixels('chart-egress', [44, 160, 44]),
    summary: document.getElementById('summary').textContent.replace(/\s+/g, ' ').trim(),
    authShown: !document.getElementById('auth').hidden,
    errorText: document.getElementById('error').textContent,
  };
}

async function cluster(context) {
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => msg.type() === 'error' && consoleErrors.push(msg.text()));
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  const result = { ok: false };
  try {
    await page.goto(args.base + '/cluster', { waitUntil: 'load', timeout: 10000 });
    await page
      .waitForFunction(
        ({ minPolls, minViewers }) => {
          const s = window.sluiceCluster;
          return s && s.polls >= minPolls && s.last && s.last.edges.viewers >= minViewers &&
            s.charts.viewers && s.charts.viewers.data[0].length >= minPolls;
        },
        { minPolls: args.minPolls, minViewers: args.minViewers },
        { timeout: args.timeoutMs, polling: 250 }
      )
      .catch((e) => (result.waitError = e.message.split('\n')[0]));
    Object.assign(result, await page.evaluate(sample));
    result.screenshot = join(args.out, 'cluster-page.png');
    await page.screenshot({ path: result.screenshot, fullPage: true });
    result.ok = true;
  } catch (e) {
    result.error = String(e);
  }
  result.consoleErrors = consoleErrors.slice(0, 20);
  await page.close();
  return result;
}

// The page when /api/cluster answers 401: what it says, and the Authorization header it sent.
async function unauthorized(context, fragment) {
  const page = await context.newPage();
  const seen = [];
  await page.route('**/api/cluster', (route) => {
    seen.push(route.request().headers()['authorization'] || null);
    route.fulfill({ status: 401, contentType: 'text/plain', body: 'missing or wrong bearer token\n' });
  });
  const result = { fragment, ok: false };
  try {
    await page.goto(args.base + '/cluster' + fragment, { waitUntil: 'load', timeout: 10000 });
    await page.waitForFunction(() => !document.getElementById('auth').hidden, null, { timeout: 10000 });
    result.message = await page.evaluate(() => document.getElementById('auth').textContent);
    result.status = await page.evaluate(() => window.sluiceCluster.status);
    result.ok = true;
  } catch (e) {
    result.error = String(e);
  }
  result.authorization = seen;
  await page.close();
  return result;
}

const userDataDir = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  const result = await cluster(context);
  result.noToken = await unauthorized(context, '');
  result.withToken = await unauthorized(context, '#token=s3cret-token');
  console.log(JSON.stringify(result));
} finally {
  if (context) await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
