/* The run page: status, progress bar with ETA, live charts, log tail, checkpoints and the collapse
   guardrail, all fed by the run's socket: the page's only one (monitor.js subscribes to it too, via
   `window.distilleryRun.socket`). Every metric point is kept once (by step), so the snapshot sent on
   reconnect and the live batches may overlap freely; `window.distilleryRun` exposes the state for tests.
   Each series keeps its own raw array (`state.raw`) and hands the chart a fresh array on every
   redraw: once Chart.js's decimation plugin takes over a dataset, `dataset.data` reads back its
   decimated copy, so pushing onto it would silently drop every new point. The optional smoothing is
   TensorBoard's debiased exponential moving average, computed incrementally per series. */
(function () {
  "use strict";
  const { liveSocket, formatDuration, setStatusBadge } = window.DistilleryLive;
  const { groupOf, lineChart, dataset } = window.DistilleryCharts;
  const root = document.getElementById("run-page");
  const $ = (id) => document.getElementById(id);
  const UNSMOOTHED = new Set(["lr"]);  // a schedule, not a noisy measurement: smoothing would only delay it
  const HIDDEN = new Set(["num_tokens"]);  // TRL's running token count: the tokens axis of the comparison shows it
  const state = { lastStep: -1, points: [], charts: {}, series: {}, raw: {}, smooth: {}, smoothing: 0,
                  run: null, redraw: false, messages: 0, collapse: null };
  window.distilleryRun = state;

  function chartFor(group) {
    if (!state.charts[group.id]) {
      const empty = $("charts-empty");
      if (empty) empty.remove();
      const card = document.createElement("div");
      card.className = "chart-card";
      card.dataset.chart = group.id;
      card.style.order = window.DistilleryCharts.GROUPS.indexOf(group);  // loss first, whatever arrives first
      const title = document.createElement("h3");
      title.textContent = group.title;
      const box = document.createElement("div");
      box.className = "chart-box";
      const canvas = document.createElement("canvas");
      box.appendChild(canvas);
      card.append(title, box);
      $("charts").appendChild(card);
      state.charts[group.id] = lineChart(canvas);
    }
    return state.charts[group.id];
  }

  function seriesFor(key) {
    if (!state.series[key]) {
      const chart = chartFor(groupOf(key));
      const ds = dataset(key, chart.data.datasets.length);
      chart.data.datasets.push(ds);
      state.series[key] = ds;
      state.raw[key] = [];
    }
    return state.raw[key];
  }

  /* Debiased EMA: s_i = w·s_(i-1) + (1-w)·y_i, shown as s_i / (1 - w^(i+1)), so the first points are
     not dragged towards 0. Extends the cached output from where it stopped. */
  function smoothed(key) {
    const raw = state.raw[key], w = state.smoothing;
    let cache = state.smooth[key];
    if (!cache || cache.w !== w || cache.out.length > raw.length) cache = state.smooth[key] = { w, acc: 0, out: [] };
    for (let i = cache.out.length; i < raw.length; i++) {
      cache.acc = w * cache.acc + (1 - w) * raw[i].y;
      // 12 significant digits: a constant series stays exactly constant (no 1e-16 wiggle for the
      // autoscaled axis to zoom into).
      cache.out.push({ x: raw[i].x, y: Number((cache.acc / (1 - Math.pow(w, i + 1))).toPrecision(12)) });
    }
    return cache.out;
  }

  function shownData(key) {
    // slice(): a new array each time, so the chart (and its decimation) re-reads every point.
    return (state.smoothing > 0 && !UNSMOOTHED.has(key) ? smoothed(key) : state.raw[key]).slice();
  }

  function addPoints(points) {
    for (const p of points) {
      if (p.step <= state.lastStep) continue;
      state.lastStep = p.step;
      state.points.push(p);
      for (const [key, value] of Object.entries(p.values)) {
        if (HIDDEN.has(key)) continue;
        if (value !== null && isFinite(value)) seriesFor(key).push({ x: p.step, y: value });
      }
    }
    scheduleRedraw();
  }

  function truncate(afterStep) {
    state.points = state.points.filter((p) => p.step <= afterStep);
    for (const key of Object.keys(state.raw)) state.raw[key] = state.raw[key].filter((d) => d.x <= afterStep);
    state.smooth = {};
    state.lastStep = Math.min(state.lastStep, afterStep);
    scheduleRedraw();
  }

  function scheduleRedraw() {
    if (state.redraw) return;
    state.redraw = true;
    requestAnimationFrame(() => {
      state.redraw = false;
      for (const [key, ds] of Object.entries(state.series)) ds.data = shownData(key);
      for (const chart of Object.values(state.charts)) chart.update("none");
      $("point-count").textContent = state.points.length;
      showEta();
    });
  }

  function showEta() {
    const run = state.run;
    if (!run || run.status !== "running" || !run.total_steps || state.points.length < 2) {
      $("run-eta").textContent = "";
      return;
    }
    const last = state.points[state.points.length - 1];
    const window = state.points.filter((p) => p.t >= last.t - 60);
    const first = window[0];
    const rate = (last.step - first.step) / Math.max(last.t - first.t, 1e-3);
    $("run-eta").textContent = rate > 0 && last.t > first.t
      ? `ETA ${formatDuration((run.total_steps - run.step) / rate)} · ${rate.toFixed(rate < 1 ? 2 : 1)} steps/s` : "";
  }

  function showRun(run) {
    state.run = run;
    setStatusBadge($("run-status"), run);
    $("run-step").textContent = run.step;
    $("run-total").textContent = run.total_steps || "?";
    $("progress-bar").style.width = run.total_steps ? `${Math.min(100, (100 * run.step) / run.total_steps)}%` : "0";
    $("run-stage").textContent = run.stage || "";
    $("run-queue").textContent = run.queue_position ? `queued: position ${run.queue_position}` : "";
    $("cancel-form").hidden = !run.active;
    $("cancel-button").disabled = run.cancel_requested;
    $("cancel-note").hidden = !(run.cancel_requested && run.status === "running");
    $("resume-form").hidden = !(run.status === "failed" || run.status === "cancelled");
    $("run-error").hidden = !run.error;
    $("run-error-text").textContent = run.error || "";
    $("run-traceback").textContent = run.traceback || "";
    if (run.model_version) {
      $("run-result").hidden = false;
      $("run-version").textContent = run.model_version.name;
    }
    if (run.checkpoints) showCheckpoints(run.checkpoints);
    showEta();
  }

  function showCheckpoints(checkpoints) {
    const body = $("checkpoints").querySelector("tbody");
    body.replaceChildren();
    for (const c of checkpoints) {
      const tr = document.createElement("tr");
      for (const text of [String(c.step), c.path, c.is_final ? "final" : ""]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function appendLog(lines, replace) {
    const log = $("run-log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const all = (replace ? [] : log.textContent.split("\n").filter(Boolean)).concat(lines);
    log.textContent = all.slice(-500).join("\n");
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  /* The DPO collapse warning: the server's verdict (webapp/training/guardrails.py), or null. */
  function showCollapse(collapse) {
    state.collapse = collapse || null;
    $("collapse-warning").hidden = !collapse;
    $("collapse-message").textContent = collapse ? collapse.message : "";
  }

  function onMessage(message) {
    state.messages += 1;
    switch (message.event) {
      case "run.snapshot":
        showRun(message.run);
        showCollapse(message.collapse);
        addPoints(message.points);
        appendLog((message.log || "").split("\n").filter(Boolean), true);
        break;
      case "run.points": addPoints(message.points); break;
      case "run.status": showRun(message.run); break;
      case "run.log": appendLog(message.lines, false); break;
      case "run.truncate": truncate(message.after_step); break;
      case "run.guardrail": showCollapse(message.collapse); break;
    }
  }

  const slider = $("smoothing");
  if (slider) {
    const label = $("smoothing-value");
    slider.addEventListener("input", () => {
      state.smoothing = Math.min(0.999, Math.max(0, Number(slider.value) || 0));
      label.textContent = state.smoothing ? state.smoothing.toFixed(2) : "off";
      scheduleRedraw();
    });
  }

  $("cancel-form").addEventListener("submit", (e) => {
    if (!confirm("Cancel this run? It stops after the current step and keeps a checkpoint you can resume from.")) e.preventDefault();
  });
  state.socket = liveSocket(root.dataset.ws, { onMessage, query: () => `after=${state.lastStep}`, indicator: $("live-indicator") });
})();
