// The control plane's cluster page: polls /api/cluster every 2 s, draws the nodes (load bars
// against capacity), the streams (viewers per node) and charts of the last minutes (uPlot,
// compiled into the control plane). The history lives here, in the page: the control plane
// keeps none, so every replica answers alike.
//
// Names and figures come from etcd and are untrusted: every value reaches the page through
// textContent or a DOM property, never as markup.
//
// When the control plane protects /api/* with a token, open the page as /#token=TOKEN (or
// /?token=TOKEN); the token goes out as `Authorization: Bearer TOKEN`.
'use strict';

(function () {
  const POLL_MS = 2000;
  // 10 minutes of 2 s samples.
  const HISTORY_POINTS = 300;

  // What a test (or a curious person in the console) can look at.
  const state = {
    polls: 0,
    errors: [],
    status: 'starting',
    last: null,
    charts: {},
    history: { t: [], edgeViewers: [], originViewers: [], edgeEgress: [], originEgress: [] },
  };
  window.sluiceCluster = state;

  const $ = (id) => document.getElementById(id);

  function token() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
    return hash.get('token') || new URLSearchParams(location.search).get('token') || '';
  }

  // An element with its text set as text.
  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }

  function fmtBps(bps) {
    if (!bps) return '0 bit/s';
    const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
    let i = 0;
    let v = bps;
    while (v >= 1000 && i < units.length - 1) {
      v /= 1000;
      i += 1;
    }
    return (v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
  }

  function fmtBytes(b) {
    if (!b) return '–';
    return (b / (1024 * 1024)).toFixed(0) + ' MiB';
  }

  function fmtCores(millicores) {
    return (millicores / 1000).toFixed(2) + ' cores';
  }

  function fmtAge(sinceMs) {
    if (!sinceMs) return '–';
    let s = Math.max(0, Math.floor((Date.now() - sinceMs) / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    s %= 60;
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }

  // A load bar: value against max (a full bar at or above max).
  function meter(value, max) {
    const m = document.createElement('meter');
    m.min = 0;
    m.max = max > 0 ? max : 1;
    m.value = Math.min(value, m.max);
    m.low = 0.6 * m.max;
    m.high = 0.85 * m.max;
    m.optimum = 0;
    return m;
  }

  function barCell(value, max, label) {
    const td = el('td');
    if (max > 0) td.append(meter(value, max));
    td.append(el('span', label));
    return td;
  }

  function showMessage(id, text) {
    const p = $(id);
    p.textContent = text || '';
    p.hidden = !text;
  }

  function renderSummary(view) {
    const e = view.edges;
    $('sum-viewers').textContent = e.viewers + ' / ' + e.max_viewers;
    $('sum-egress').textContent = fmtBps(e.egress_bps) + ' / ' + fmtBps(e.max_egress_bps);
    $('sum-cpu').textContent = fmtCores(e.cpu_millicores);
    $('sum-recommended').textContent =
      view.recommended_edges === null || view.recommended_edges === undefined
        ? '–'
        : view.recommended_edges + ' at ' + Math.round(view.target_utilisation * 100) + ' %';
  }

  function renderNodes(nodes) {
    // CPU bars are relative to the busiest node, at least one core.
    const cpuScale = Math.max(1000, ...nodes.map((n) => (n.load ? n.load.cpu_millicores : 0)));
    const rows = nodes.map((n) => {
      const tr = el('tr');
      tr.dataset.node = n.id;
      tr.dataset.role = n.role;
      tr.append(el('td', n.id, 'node-id'));
      tr.append(el('td', n.role));
      const draining = n.drain_ordered || (n.load && n.load.draining);
      tr.append(el('td', n.state + (draining && n.state !== 'draining' ? ' (draining)' : ''), draining ? 'draining' : ''));
      const l = n.load;
      if (l) {
        const viewers = barCell(l.viewers_total, l.max_viewers, l.viewers_total + ' / ' + l.max_viewers);
        viewers.className = 'viewers';
        viewers.dataset.value = String(l.viewers_total);
        tr.append(viewers);
        tr.append(barCell(l.egress_bps, l.max_egress_bps, fmtBps(l.egress_bps) + ' / ' + fmtBps(l.max_egress_bps)));
        tr.append(barCell(l.cpu_millicores, cpuScale, fmtCores(l.cpu_millicores)));
        tr.append(el('td', l.streams));
        tr.append(el('td', fmtBytes(l.memory_bytes)));
      } else {
        const none = el('td', 'no load report yet', 'muted');
        none.colSpan = 5;
        tr.append(none);
      }
      tr.append(el('td', n.version || '–'));
      tr.append(el('td', fmtAge(n.started_at_ms)));
      tr.append(el('td', n.addresses.http || n.addresses.rtmp || ''));
      return tr;
    });
    $('nodes').replaceChildren(...rows);
    $('no-nodes').hidden = nodes.length > 0;
  }

  function playLink(s, ext, label) {
    const a = el('a', label);
    a.href = '/play/' + encodeURIComponent(s.app) + '/' + encodeURIComponent(s.name) + ext;
    return a;
  }

  function renderStreams(streams) {
    const rows = streams.map((s) => {
      const tr = el('tr');
      const key = s.app + '/' + s.name;
      tr.dataset.stream = key;
      tr.append(el('td', key, 'stream-name'));
      tr.append(el('td', s.origin));
      tr.append(el('td', s.home || '–'));
      tr.append(el('td', s.codecs.join(', ')));
      let video = '–';
      if (s.width && s.height) {
        video = s.width + '×' + s.height;
        if (s.fps_milli) video += ' @ ' + (s.fps_milli / 1000).toFixed(2).replace(/\.?0+$/, '') + ' fps';
      }
      tr.append(el('td', video));
      tr.append(el('td', s.ingress_bps ? fmtBps(s.ingress_bps) : '–'));
      const perNode = el('td');
      const list = el('ul', null, 'per-node');
      for (const [node, viewers] of Object.entries(s.viewers)) {
        const li = el('li', node + ': ' + viewers);
        li.dataset.node = node;
        li.dataset.value = String(viewers);
        list.append(li);
      }
      if (list.children.length === 0) list.append(el('li', '–', 'muted'));
      perNode.append(list);
      tr.append(perNode);
      const total = el('td', s.viewers_total, 'viewers');
      total.dataset.value = String(s.viewers_total);
      tr.append(total);
      tr.append(el('td', fmtAge(s.started_at_ms)));
      const play = el('td');
      play.append(playLink(s, '.m3u8', 'HLS'), ' ', playLink(s, '.flv', 'FLV'));
      tr.append(play);
      return tr;
    });
    $('streams').replaceChildren(...rows);
    $('no-streams').hidden = streams.length > 0;
  }

  function chartSize(div) {
    return { width: Math.max(300, div.clientWidth || 520), height: 220 };
  }

  function makeChart(id, labels, colors) {
    const div = $(id);
    const opts = {
      ...chartSize(div),
      scales: { x: { time: true } },
      series: [{}].concat(labels.map((label, i) => ({ label, stroke: colors[i], width: 2 }))),
      axes: [{}, { size: 60 }],
      legend: { live: false },
    };
    return new window.uPlot(opts, [[]].concat(labels.map(() => [])), div);
  }

  function ensureCharts() {
    if (state.charts.viewers || state.chartsMissing) return;
    if (typeof window.uPlot !== 'function') {
      state.chartsMissing = window.uPlotMissing || 'the chart library did not load';
      showMessage('charts-missing', 'No charts: ' + state.chartsMissing);
      return;
    }
    state.charts.viewers = makeChart('chart-viewers', ['edges', 'origins'], ['#1f77b4', '#ff7f0e']);
    state.charts.egress = makeChart('chart-egress', ['edges', 'origins'], ['#2ca02c', '#9467bd']);
    window.addEventListener('resize', () => {
      for (const [name, chart] of Object.entries(state.charts)) {
        chart.setSize(chartSize($('chart-' + name)));
      }
    });
  }

  function record(view) {
    const h = state.history;
    h.t.push(Date.now() / 1000);
    h.edgeViewers.push(view.edges.viewers);
    h.originViewers.push(view.origins.viewers);
    h.edgeEgress.push(view.edges.egress_bps / 1e6);
    h.originEgress.push(view.origins.egress_bps / 1e6);
    for (const series of Object.values(h)) {
      if (series.length > HISTORY_POINTS) series.splice(0, series.length - HISTORY_POINTS);
    }
    ensureCharts();
    if (state.charts.viewers) {
      state.charts.viewers.setData([h.t, h.edgeViewers, h.originViewers]);
      state.charts.egress.setData([h.t, h.edgeEgress, h.originEgress]);
    }
  }

  function setStatus(text) {
    state.status = text;
    $('status').textContent = text;
  }

  async function poll() {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    let response;
    try {
      response = await fetch('/api/cluster', { headers, cache: 'no-store' });
    } catch (e) {
      showMessage('error', 'The control plane does not answer: ' + e);
      setStatus('unreachable');
      return;
    }
    if (response.status === 401 || response.status === 403) {
      showMessage(
        'auth',
        t
          ? 'The control plane refused the token in this page\'s address (HTTP ' + response.status + '). Check it and reload.'
          : 'This control plane requires a token: open this page as /#token=YOUR_TOKEN (the token of its --token-file).'
      );
      showMessage('error', '');
      setStatus('unauthorized');
      return;
    }
    if (!response.ok) {
      showMessage('error', 'GET /api/cluster answered HTTP ' + response.status);
      setStatus('error');
      return;
    }
    let view;
    try {
      view = await response.json();
    } catch (e) {
      showMessage('error', 'GET /api/cluster answered something that is not JSON: ' + e);
      return;
    }
    showMessage('auth', '');
    showMessage('error', '');
    state.last = view;
    state.polls += 1;
    renderSummary(view);
    renderNodes(view.nodes);
    renderStreams(view.streams);
    record(view);
    setStatus(
      (view.ready ? 'updated ' : 'cache loading; updated ') + new Date().toLocaleTimeString() + ' (revision ' + view.revision + ')'
    );
  }

  async function loop() {
    try {
      await poll();
    } catch (e) {
      state.errors.push(String(e));
      if (state.errors.length > 20) state.errors.shift();
      showMessage('error', 'Page error: ' + e);
    }
    setTimeout(loop, POLL_MS);
  }

  loop();
})();
