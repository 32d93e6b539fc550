// Drives headless Chromium (playwright-core, installed by `npm ci --prefix web`) through the
// Sluice web page: for each mode it opens BASE/?stream=STREAM&mode=MODE (hls, flv, native), or
// for a mode `video:PATH` a bare <video> element whose src is BASE/PATH (the browser's own
// player, without the page), waits for playback,
// samples video.currentTime and decoded frames a few seconds apart, and takes a screenshot.
// Prints one JSON line per mode ({"mode", "ok", "t0", "t1", "frames0", "frames1", ...});
// the Rust test (tests/tests/browser.rs) makes the assertions. Exits non-zero only if the
// browser could not be driven at all.
//
// usage: node play.mjs --web-dir DIR --base URL --stream APP/NAME --modes hls,flv,... [--token T]
//                      --out DIR [--chromium PATH] [--sample-ms N] [--start-timeout-ms N]
//                      [--min-advance S --advance-grace-ms N: if currentTime advanced less
//                      than S seconds in the sample, sample on for up to N ms more]
//        --recording APP/NAME/ID instead of --stream opens BASE/?recording=...&mode=MODE (vod, mp4).
//        A mode catalog:WORDS opens BASE/, searches the catalog for WORDS on the page and plays
//        the first item found with its Play button.

import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

function parseArgs(argv) {
  const args = { chromium: '/usr/bin/chromium', sampleMs: 3000, startTimeoutMs: 20000, minAdvance: 0, advanceGraceMs: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error('missing value for ' + argv[i]);
    args[key] = argv[i + 1];
  }
  if (args.recording) args.stream = args.stream || '-';
  for (const required of ['webDir', 'base', 'stream', 'modes', 'out']) {
    if (!args[required]) throw new Error('missing --' + required.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()));
  }
  args.sampleMs = Number(args.sampleMs);
  args.startTimeoutMs = Number(args.startTimeoutMs);
  return args;
}

const args = parseArgs(process.argv.slice(2));
const require = createRequire(join(resolve(args.webDir), 'package.json'));
const { chromium } = require('playwright-core');

// What the page shows about playback (a bare video page has only the video).
function sample() {
  const video = document.getElementById('video');
  const quality = video.getVideoPlaybackQuality();
  const player = window.sluicePlayer || {};
  const text = (id) => (document.getElementById(id) ? document.getElementById(id).textContent : '');
  const missing = document.getElementById('libs-missing');
  return {
    currentTime: video.currentTime,
    frames: quality.totalVideoFrames,
    dropped: quality.droppedVideoFrames,
    paused: video.paused,
    readyState: video.readyState,
    width: video.videoWidth,
    height: video.videoHeight,
    status: text('status'),
    librariesMissing: missing ? !missing.hidden : false,
    librariesNote: text('libs-missing'),
    errors: (player.errors || []).concat(video.error ? ['video error ' + video.error.code + ': ' + video.error.message] : []),
    listed: text('streams'),
    recordings: text('recordings'),
    catalog: text('catalog-items'),
    thumbs: Array.from(document.querySelectorAll('#catalog-items img.thumb')).filter((i) => i.complete && i.naturalWidth > 0).length,
  };
}

// A page with nothing but a video element playing `src` with the browser's own player.
function bareVideo(src) {
  const video = document.createElement('video');
  video.id = 'video';
  video.muted = true;
  video.autoplay = true;
  document.body.replaceChildren(video);
  video.src = src;
  video.play().catch(() => {});
}

async function playOne(context, mode) {
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => msg.type() === 'error' && consoleErrors.push(msg.text()));
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  const token = args.token ? `&token=${encodeURIComponent(args.token)}` : '';
  const bare = mode.startsWith('video:') ? args.base + mode.slice('video:'.length) : null;
  const search = mode.startsWith('catalog:') ? mode.slice('catalog:'.length) : null;
  const what = args.recording
    ? `recording=${encodeURIComponent(args.recording)}`
    : `stream=${encodeURIComponent(args.stream)}`;
  const url = bare || (search !== null ? `${args.base}/` : `${args.base}/?${what}&mode=${mode}${token}`);
  const result = { mode, url, ok: false };
  try {
    if (bare) {
      // Same origin as the media, like a site embedding its own streams.
      await page.goto(`${args.base}/api/streams`, { waitUntil: 'load', timeout: 10000 });
      await page.evaluate(bareVideo, bare);
    } else if (search !== null) {
      await page.goto(url, { waitUntil: 'load', timeout: 10000 });
      await page.waitForSelector('#catalog:not([hidden])', { timeout: 10000 });
      await page.fill('#catalog-q', search);
      await page.click('#catalog-search button[type=submit]');
      await page.waitForSelector('#catalog-items button', { timeout: 10000 });
      await page.waitForFunction(() => Array.from(document.querySelectorAll('#catalog-items img.thumb')).every((i) => i.complete), null, { timeout: 10000 }).catch(() => {});
      result.found = await page.evaluate(sample);
      await page.click('#catalog-items button');
    } else {
      await page.goto(url, { waitUntil: 'load', timeout: 10000 });
    }
    await page
      .waitForFunction(
        () => {
          const v = document.getElementById('video');
          return v.currentTime > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
        },
        null,
        { timeout: args.startTimeoutMs, polling: 200 }
      )
      .catch((e) => (result.startError = e.message.split('\n')[0]));
    const first = await page.evaluate(sample);
    await page.waitForTimeout(args.sampleMs);
    let second = await page.evaluate(sample);
    // A page that stalled a while (a loaded machine) gets a little longer to show it plays on.
    const graceEnd = Date.now() + Number(args.advanceGraceMs);
    while (second.currentTime - first.currentTime < Number(args.minAdvance) && Date.now() < graceEnd) {
      await page.waitForTimeout(250);
      second = await page.evaluate(sample);
    }
    result.screenshot = join(args.out, `browser-${mode.replace(/[^a-z0-9]+/gi, '_')}.png`);
    await page.screenshot({ path: result.screenshot });
    Object.assign(result, {
      ok: true,
      t0: first.currentTime,
      t1: second.currentTime,
      frames0: first.frames,
      frames1: second.frames,
      dropped: second.dropped,
      paused: second.paused,
      readyState: second.readyState,
      width: second.width,
      height: second.height,
      status: second.status,
      librariesMissing: second.librariesMissing,
      librariesNote: second.librariesNote,
      pageErrors: second.errors,
      listed: second.listed,
      recordings: second.recordings,
    });
    if (result.found) {
      result.catalog = result.found.catalog;
      result.thumbs = result.found.thumbs;
      delete result.found;
    }
  } catch (e) {
    result.error = String(e);
  }
  result.consoleErrors = consoleErrors.slice(0, 20);
  await page.close();
  return result;
}

const userDataDir = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  for (const mode of args.modes.split(',')) {
    console.log(JSON.stringify(await playOne(context, mode)));
  }
} finally {
  if (context) await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
