// Sluice web page: lists live streams (/api/streams) and plays one over LL-HLS (hls.js),
// LL-DASH (dash.js) or HTTP-FLV (mpegts.js), or over the browser's own HLS player where it has one (Safari, iOS,
// recent Chromium). No build step: the libraries are loaded by index.html from /assets/.
//
// URL parameters pick what to play: ?stream=APP/NAME&mode=hls|dash|flv|native (mode defaults to
// hls; hls falls back to native when the browser has no Media Source Extensions), and
// &token=... for a private stream (a signed play token: sent with that stream's requests only).
// A node that records also lists its recordings (/api/recordings) and plays one:
// ?recording=APP/NAME/ID&mode=vod|mp4 (HLS VOD through hls.js, or the MP4 download in the
// browser's own player).
// A node that keeps a catalog (/api/catalog) also searches it: by words, tag and kind, a page
// at a time, each item with its thumbnail and a button that plays it.
// The player's state is kept in window.sluicePlayer (read by the browser test).
'use strict';

(function () {
  const REFRESH_MS = 3000;
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const state = (window.sluicePlayer = { stream: null, recording: null, mode: null, errors: [], player: null });

  const libs = {
    hls: typeof window.Hls !== 'undefined',
    flv: typeof window.mpegts !== 'undefined',
    dash: typeof window.dashjs !== 'undefined',
  };
  // Whether the browser plays HLS itself.
  const nativeHls = video.canPlayType('application/vnd.apple.mpegurl') !== '';
  const MODES = { hls: 'LL-HLS', dash: 'LL-DASH', flv: 'HTTP-FLV', native: 'native HLS' };
  if (!nativeHls) document.querySelector('input[name=mode][value=native]').parentElement.hidden = true;
  if (!libs.hls || !libs.flv || !libs.dash) {
    const missing = [!libs.hls && 'hls.js', !libs.flv && 'mpegts.js', !libs.dash && 'dash.js']
      .filter(Boolean)
      .join(' and ');
    const note = $('libs-missing');
    note.textContent =
      'player libraries not installed: run `npm ci --prefix web` (missing: ' + missing + '), then reload.';
    note.hidden = false;
  }

  function setStatus(text, isError) {
    const el = $('status');
    el.textContent = text;
    el.className = isError ? 'error' : 'muted';
    if (isError) state.errors.push(text);
  }

  function describeVideo(v) {
    if (!v) return ['-', '-'];
    const codec = [v.codec, v.profile].filter(Boolean).join(' ');
    let res = v.width && v.height ? v.width + '\u00d7' + v.height : '?';
    if (v.fps) res += ' @ ' + Math.round(v.fps * 100) / 100 + ' fps';
    return [codec || '?', res];
  }

  function describeAudio(a) {
    if (!a) return '-';
    const parts = [a.codec];
    if (a.sample_rate) parts.push(a.sample_rate / 1000 + ' kHz');
    if (a.channels) parts.push(a.channels === 1 ? 'mono' : a.channels === 2 ? 'stereo' : a.channels + ' ch');
    return parts.join(' ');
  }

  function cell(row, text) {
    const td = document.createElement('td');
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function renderStreams(streams) {
    const body = $('streams');
    body.replaceChildren();
    for (const s of streams) {
      const key = s.app + '/' + s.name;
      const row = document.createElement('tr');
      if (key === state.stream) row.className = 'playing';
      const [codec, res] = describeVideo(s.video);
      cell(row, key);
      cell(row, codec);
      cell(row, res);
      cell(row, describeAudio(s.audio));
      cell(row, String(s.viewers));
      const actions = cell(row, '');
      for (const mode of nativeHls ? ['hls', 'dash', 'flv', 'native'] : ['hls', 'dash', 'flv']) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = MODES[mode];
        button.addEventListener('click', () => play(key, mode));
        actions.appendChild(button);
      }
      body.appendChild(row);
    }
    $('no-streams').hidden = streams.length > 0;
  }

  async function refresh() {
    try {
      const response = await fetch('/api/streams', { cache: 'no-store' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const json = await response.json();
      renderStreams(Array.isArray(json.streams) ? json.streams : []);
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      $('updated').textContent = 'cannot list streams: ' + e.message;
    }
  }

  function renderRecordings(recordings) {
    const body = $('recordings');
    body.replaceChildren();
    for (const r of recordings) {
      const key = r.app + '/' + r.stream + '/' + r.id;
      const row = document.createElement('tr');
      if (key === state.recording) row.className = 'playing';
      cell(row, r.app + '/' + r.stream);
      cell(row, new Date(r.started_at_ms).toLocaleString());
      cell(row, r.duration_s.toFixed(1) + ' s');
      cell(row, (r.bytes / 1e6).toFixed(1) + ' MB');
      cell(row, r.finished ? 'finished' : 'recording');
      const actions = cell(row, '');
      for (const mode of r.finished ? ['vod', 'mp4'] : ['vod']) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = RECORDING_MODES[mode];
        button.addEventListener('click', () => playRecording(key, mode));
        actions.appendChild(button);
      }
      body.appendChild(row);
    }
    $('no-recordings').hidden = recordings.length > 0;
  }

  async function refreshRecordings() {
    try {
      const response = await fetch('/api/recordings?limit=50', { cache: 'no-store' });
      // 404: this node does not record.
      $('recorded').hidden = response.status === 404;
      if (response.status === 404) return;
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const json = await response.json();
      renderRecordings(Array.isArray(json.recordings) ? json.recordings : []);
    } catch (e) {
      $('no-recordings').textContent = 'cannot list recordings: ' + e.message;
    }
  }

  const RECORDING_MODES = { vod: 'HLS', mp4: 'MP4' };

  // The catalog: the search the form says, its pages appended by "More".
  const catalog = { next: null };

  function renderItems(items, append) {
    const body = $('catalog-items');
    if (!append) body.replaceChildren();
    for (const item of items) {
      const row = document.createElement('tr');
      const thumb = cell(row, '');
      if (item.thumbnail && item.thumbnail.startsWith('/vod/')) {
        const img = document.createElement('img');
        img.className = 'thumb';
        img.alt = '';
        img.loading = 'lazy';
        img.src = item.thumbnail;
        thumb.appendChild(img);
      }
      cell(row, item.title || '(untitled)');
      cell(row, item.app + '/' + item.stream);
      cell(row, item.kind);
      cell(row, new Date(item.started_ms).toLocaleString());
      cell(row, item.kind === 'live' && !item.ended_ms ? 'live' : (item.duration_ms / 1000).toFixed(1) + ' s');
      cell(row, (item.tags || []).join(', '));
      const actions = cell(row, '');
      const playable = item.kind === 'recording' || !item.ended_ms;
      if (playable) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'Play';
        button.addEventListener('click', () =>
          item.kind === 'recording' ? playRecording(item.id, 'vod') : play(item.app + '/' + item.stream, 'hls')
        );
        actions.appendChild(button);
      }
      body.appendChild(row);
    }
    $('catalog-none').hidden = body.children.length > 0;
  }

  async function searchCatalog(append) {
    const params = new URLSearchParams({ limit: '20' });
    const q = $('catalog-q').value.trim();
    const tag = $('catalog-tag').value.trim();
    const kind = $('catalog-kind').value;
    if (q) params.set('q', q);
    if (tag) params.set('tags', tag);
    if (kind) params.set('kind', kind);
    if (append && catalog.next) params.set('page', catalog.next);
    try {
      const response = await fetch('/api/catalog?' + params, { cache: 'no-store' });
      // 404: this node keeps no catalog.
      $('catalog').hidden = response.status === 404;
      if (response.status === 404) return;
      if (!response.ok) throw new Error('HTTP ' + response.status + ': ' + (await response.text()).trim());
      const json = await response.json();
      catalog.next = json.next_page || null;
      renderItems(Array.isArray(json.items) ? json.items : [], append);
      $('catalog-more').hidden = !catalog.next;
    } catch (e) {
      $('catalog-none').hidden = false;
      $('catalog-none').textContent = 'cannot search the catalog: ' + e.message;
    }
  }

  $('catalog-search').addEventListener('submit', (event) => {
    event.preventDefault();
    searchCatalog(false);
  });
  $('catalog-more').addEventListener('click', () => searchCatalog(true));

  // A recording: its HLS index through hls.js (VOD, or EVENT while it is written), or the
  // finished recording's MP4 in the browser's own player.
  function playRecording(key, mode) {
    if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\/[0-9]+$/.test(key)) return setStatus('not a recording: ' + key, true);
    stop();
    mode = RECORDING_MODES[mode] ? mode : 'vod';
    state.stream = null;
    state.recording = key;
    state.mode = mode;
    $('now-playing').textContent = 'recording ' + key + ' (' + RECORDING_MODES[mode] + ')';
    const url = new URL(location.href);
    url.searchParams.delete('stream');
    url.searchParams.delete('token');
    url.searchParams.set('recording', key);
    url.searchParams.set('mode', mode);
    history.replaceState(null, '', url);
    video.muted = true;
    const base = '/vod/' + key.split('/').map(encodeURIComponent).join('/');
    if (mode === 'mp4') {
      video.src = base + '.mp4';
      video.play().catch((e) => setStatus('autoplay refused: ' + e.message + ' (press play)'));
      setStatus('playing recording ' + key + ' as MP4');
      state.player = { destroy() {} };
    } else if (libs.hls && window.Hls.isSupported()) {
      const hls = new window.Hls();
      hls.on(window.Hls.Events.ERROR, (_event, data) => data.fatal && setStatus('HLS error: ' + data.details, true));
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
        setStatus('playing recording ' + key + ' over HLS');
        video.play().catch((e) => setStatus('autoplay refused: ' + e.message + ' (press play)'));
      });
      hls.loadSource(base + '/index.m3u8');
      hls.attachMedia(video);
      state.player = hls;
    } else {
      setStatus('hls.js is not installed or not supported here: try MP4', true);
    }
    refreshRecordings();
  }

  function stop() {
    const player = state.player;
    state.player = null;
    if (player) {
      try {
        player.destroy();
      } catch (e) {
        console.warn('destroying player', e);
      }
    }
    video.removeAttribute('src');
    video.load();
    $('now-playing').textContent = '';
  }

  function streamPath(key) {
    const [app, name] = key.split('/');
    return '/' + encodeURIComponent(app) + '/' + encodeURIComponent(name);
  }

  // The play token the page was opened with belongs to the stream it named, and to no other.
  const opened = new URLSearchParams(location.search);
  const tokens = opened.get('token') ? { [opened.get('stream')]: opened.get('token') } : {};

  // `path` with the stream's token, if it has one.
  function withToken(key, path) {
    return tokens[key] ? path + '?token=' + encodeURIComponent(tokens[key]) : path;
  }

  // The browser's own HLS player: the video element loads the multivariant playlist.
  // Chromium's refuses a live playlist shorter than its hold-back (a stream younger than about
  // 6 s) with a media error: the page tries again a few times, as hls.js recovers.
  function playNative(key) {
    if (!nativeHls) return setStatus('this browser has no HLS player of its own', true);
    const src = withToken(key, streamPath(key) + '.m3u8');
    let retries = 0;
    let timer = null;
    const start = () => {
      video.src = src;
      video.play().catch((e) => e.name === 'NotAllowedError' && setStatus('autoplay refused: ' + e.message + ' (press play)'));
    };
    const onError = () => {
      const what = video.error ? video.error.message || 'code ' + video.error.code : '?';
      if (retries++ < 5) {
        setStatus('native HLS error (' + what + '), retrying');
        timer = setTimeout(start, 2000);
      } else {
        setStatus('native HLS error: ' + what, true);
      }
    };
    const onPlaying = () => setStatus('playing ' + key + ' over native HLS');
    video.addEventListener('error', onError);
    video.addEventListener('playing', onPlaying);
    onPlaying();
    start();
    return {
      destroy() {
        clearTimeout(timer);
        video.removeEventListener('error', onError);
        video.removeEventListener('playing', onPlaying);
      },
    };
  }

  function playHls(key) {
    if (!libs.hls) return setStatus('hls.js is not installed: run `npm ci --prefix web`', true);
    if (!window.Hls.isSupported() && nativeHls) return playNative(key);
    if (!window.Hls.isSupported()) return setStatus('this browser has no Media Source Extensions for hls.js', true);
    const hls = new window.Hls({ lowLatencyMode: true, backBufferLength: 30 });
    let recoveries = 0;
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR && recoveries++ < 5) {
        setStatus('network error (' + data.details + '), retrying');
        hls.startLoad();
      } else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && recoveries++ < 5) {
        setStatus('media error (' + data.details + '), recovering');
        hls.recoverMediaError();
      } else {
        setStatus('HLS error: ' + data.details, true);
      }
    });
    // A stream with renditions: hls.js picks one by the bandwidth it measures (the stats line
    // shows which); every switch is kept in state.switches.
    state.switches = [];
    hls.on(window.Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      const level = hls.levels[data.level];
      if (level) state.switches.push(level.height);
    });
    hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
      setStatus('playing ' + key + ' over LL-HLS');
      video.play().catch((e) => setStatus('autoplay refused: ' + e.message + ' (press play)'));
    });
    hls.loadSource(withToken(key, streamPath(key) + '.m3u8'));
    hls.attachMedia(video);
    return hls;
  }

  // LL-DASH through dash.js: the MPD's ServiceDescription sets the latency it aims for, and
  // its segment being produced arrives chunked. It picks a rendition by the bandwidth it
  // measures; every switch is kept in state.switches.
  function playDash(key) {
    if (!libs.dash) return setStatus('dash.js is not installed: run `npm ci --prefix web`', true);
    if (!window.dashjs.supportsMediaSource()) return setStatus('this browser has no Media Source Extensions for dash.js', true);
    const player = window.dashjs.MediaPlayer().create();
    player.updateSettings({ debug: { logLevel: window.dashjs.Debug.LOG_LEVEL_WARNING } });
    state.switches = [];
    const events = window.dashjs.MediaPlayer.events;
    player.on(events.ERROR, (e) => setStatus('DASH error: ' + ((e.error && e.error.message) || e.error), true));
    player.on(events.QUALITY_CHANGE_RENDERED, (e) => {
      if (e.mediaType === 'video' && e.newRepresentation) state.switches.push(e.newRepresentation.height);
    });
    player.on(events.STREAM_INITIALIZED, () => setStatus('playing ' + key + ' over LL-DASH'));
    player.initialize(video, new URL(withToken(key, streamPath(key) + '.mpd'), location.href).href, true);
    return {
      dash: player,
      destroy: () => player.reset(),
      get latency() {
        return player.getCurrentLiveLatency();
      },
      get rendition() {
        return player.getCurrentRepresentationForType('video');
      },
      get ladder() {
        return player.getRepresentationsByType('video').length;
      },
    };
  }

  function playFlv(key) {
    if (!libs.flv) return setStatus('mpegts.js is not installed: run `npm ci --prefix web`', true);
    if (!window.mpegts.getFeatureList().mseLivePlayback) {
      return setStatus('this browser cannot play live HTTP-FLV (no MSE live playback)', true);
    }
    const player = window.mpegts.createPlayer(
      { type: 'flv', isLive: true, url: new URL(withToken(key, streamPath(key) + '.flv'), location.href).href },
      { isLive: true, enableStashBuffer: false, liveBufferLatencyChasing: true, lazyLoad: false }
    );
    player.on(window.mpegts.Events.ERROR, (type, details) => setStatus('HTTP-FLV error: ' + type + ' ' + details, true));
    player.attachMediaElement(video);
    player.load();
    setStatus('playing ' + key + ' over HTTP-FLV');
    Promise.resolve(player.play()).catch((e) => setStatus('autoplay refused: ' + e.message + ' (press play)'));
    return player;
  }

  function play(key, mode) {
    if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(key)) return setStatus('not a stream name: ' + key, true);
    stop();
    mode = MODES[mode] ? mode : 'hls';
    state.recording = null;
    state.stream = key;
    state.mode = mode;
    document.querySelector('input[name=mode][value=' + mode + ']').checked = true;
    $('now-playing').textContent = key + ' (' + MODES[mode] + ')';
    const url = new URL(location.href);
    url.searchParams.set('stream', key);
    url.searchParams.set('mode', mode);
    if (tokens[key]) url.searchParams.set('token', tokens[key]);
    else url.searchParams.delete('token');
    history.replaceState(null, '', url);
    video.muted = true;
    state.player = { hls: playHls, dash: playDash, flv: playFlv, native: playNative }[mode](key) || null;
    refresh();
  }

  function updateStats() {
    if (!state.player) {
      $('stats').textContent = '';
      return;
    }
    const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const buffered = video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;
    const parts = ['time ' + video.currentTime.toFixed(1) + ' s', 'buffer ' + buffered.toFixed(2) + ' s'];
    if (quality) parts.push('frames ' + quality.totalVideoFrames + ' (dropped ' + quality.droppedVideoFrames + ')');
    const latency = (state.mode === 'hls' || state.mode === 'dash') && state.player.latency;
    if (typeof latency === 'number' && !Number.isNaN(latency)) {
      parts.push('latency ' + latency.toFixed(2) + ' s');
    }
    // The rendition playing, when the stream has a ladder.
    let level = null;
    let ladder = 0;
    if (state.mode === 'hls' && state.player.levels) {
      level = state.player.levels[state.player.currentLevel];
      ladder = state.player.levels.length;
    } else if (state.mode === 'dash') {
      const r = state.player.rendition;
      level = r && { height: r.height, bitrate: r.bandwidth };
      ladder = state.player.ladder;
    }
    if (level && ladder > 1) {
      const kbps = Math.round(level.bitrate / 1000);
      parts.push('rendition ' + level.height + 'p, ' + kbps + ' kbit/s (' + ladder + ' in the ladder, auto)');
    }
    $('stats').textContent = parts.join(' \u00b7 ');
  }

  for (const input of document.querySelectorAll('input[name=mode]')) {
    input.addEventListener('change', () => state.stream && play(state.stream, input.value));
  }
  $('stop').addEventListener('click', () => {
    stop();
    state.stream = null;
    state.recording = null;
    setStatus('Choose a stream.');
    refresh();
  });

  const params = new URLSearchParams(location.search);
  refresh();
  refreshRecordings();
  searchCatalog(false);
  setInterval(refresh, REFRESH_MS);
  setInterval(refreshRecordings, REFRESH_MS);
  setInterval(updateStats, 1000);
  if (params.get('stream')) play(params.get('stream'), params.get('mode'));
  else if (params.get('recording')) playRecording(params.get('recording'), params.get('mode'));
})();
