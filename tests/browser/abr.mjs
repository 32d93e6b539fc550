// Adaptive bitrate in headless Chromium (playwright-core): opens BASE/?stream=STREAM&mode=MODE
// (hls: hls.js on the stream's multivariant playlist; dash: dash.js on its MPD), waits for playback, then throttles the page's
// download rate through the devtools protocol (Network.emulateNetworkConditions) until the
// page's stats line shows the lowest rendition, lifts the throttle and waits until it shows a
// higher one again. Prints one JSON line: the heights the stats line showed, the switches
// hls.js made, and whether each phase was reached; the Rust test (tests/tests/e2e/
// browser_abr.rs) makes the assertions. Exits non-zero only if the browser could not be driven.
//
// usage: node abr.mjs --web-dir DIR --base URL --stream APP/NAME --low-height H
//                     --throttle-kbps N [--mode hls|dash] [--chromium PATH] [--phase-timeout-ms N]
//                     [--min-frames N: after the phases, play on until N frames are decoded]

import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const args = { chromium: '/usr/bin/chromium', phaseTimeoutMs: '60000', mode: 'hls', minFrames: '0' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  args[argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[i + 1];
}
for (const k of ['webDir', 'base', 'stream', 'lowHeight', 'throttleKbps']) {
  if (!args[k]) throw new Error('missing --' + k);
}
const require = createRequire(join(resolve(args.webDir), 'package.json'));
const { chromium } = require('playwright-core');

// The rendition the stats line shows, as a height (0: none shown).
function shown() {
  const m = /rendition (\d+)p/.exec(document.getElementById('stats').textContent);
  return m ? Number(m[1]) : 0;
}

const userDataDir = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
let context;
const out = { mode: args.mode, seen: [], playing: false, down: false, up: false };
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--autoplay-policy=no-user-gesture-required'],
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(`${args.base}/?stream=${encodeURIComponent(args.stream)}&mode=${args.mode}`, { timeout: 10000 });
  const timeout = Number(args.phaseTimeoutMs);
  const watch = async (until) => {
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      const h = await page.evaluate(shown);
      if (h && out.seen[out.seen.length - 1] !== h) out.seen.push(h);
      if (until(h)) return true;
      await page.waitForTimeout(250);
    }
    return false;
  };
  out.playing = await watch((h) => h > 0);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const throttle = (kbps) => cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, uploadThroughput: -1,
    downloadThroughput: kbps > 0 ? (kbps * 1000) / 8 : -1,
  });
  await throttle(Number(args.throttleKbps));
  out.down = await watch((h) => h > 0 && h <= Number(args.lowHeight));
  await throttle(0);
  out.up = await watch((h) => h > Number(args.lowHeight));
  // Keep playing until MIN_FRAMES are decoded in all (or the phase times out), so the count
  // the test checks does not depend on how quickly the switches happened.
  const frames = () => page.evaluate(() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames);
  const framesEnd = Date.now() + timeout;
  out.frames = await frames();
  while (out.frames < Number(args.minFrames) && Date.now() < framesEnd) {
    await page.waitForTimeout(250);
    out.frames = await frames();
  }
  out.switches = await page.evaluate(() => window.sluicePlayer.switches || []);
  out.pageErrors = errors;
} catch (e) {
  out.error = String(e);
} finally {
  if (context) await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
