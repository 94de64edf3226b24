/* The run page's checkpoint evaluations and teacher-hacking monitor: catch-up from monitor.json on
   load (so a reload shows every point), then live `run.checkpoint_eval` events on the run's socket.
   The verdict is the server's (webapp/training/monitor.py); a live point refetches it. Text goes in
   through textContent only. */
(function () {
  "use strict";
  const root = document.getElementById("monitor");
  const page = document.getElementById("run-page");
  if (!root || !page || !document.getElementById("monitor-chart")) return;
  const C = window.DistilleryCharts;
  const points = new Map();  // step -> point
  let best = null;

  function chart(id, yTitle) {
    const c = C.lineChart(document.getElementById(id));
    c.options.scales.y.title = { display: true, text: yTitle };
    c.options.elements.point.radius = 3;
    c.options.plugins.decimation.enabled = false;
    return c;
  }
  const monitor = chart("monitor-chart", "score (0–1)");
  const kl = chart("monitor-kl-chart", "nats / token");
  const sets = {
    proxy: C.dataset("proxy: agreement with teacher", 0), ground: C.dataset("ground truth", 2),
    low: Object.assign(C.dataset("ground truth 95% low", 2), { borderDash: [4, 4], pointRadius: 0 }),
    high: Object.assign(C.dataset("ground truth 95% high", 2), { borderDash: [4, 4], pointRadius: 0 }),
  };
  monitor.data.datasets = [sets.proxy, sets.ground, sets.low, sets.high];
  const klSet = C.dataset("KL(teacher ‖ student)", 1);
  kl.data.datasets = [klSet];

  const fmt = (e) => (e ? `${e.value.toFixed(3)} [${e.low.toFixed(3)}, ${e.high.toFixed(3)}]` : "—");
  function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }

  function redraw() {
    const sorted = [...points.values()].sort((a, b) => a.step - b.step);
    const xy = (f) => sorted.filter((p) => f(p) != null).map((p) => ({ x: p.step, y: f(p) }));
    sets.proxy.data = xy((p) => p.monitor.proxy);
    if (sorted.length) {
      sets.proxy.label = "proxy: " + sorted[0].monitor.proxy_name;
      sets.ground.label = "ground truth: " + sorted[0].monitor.ground_name;
    }
    sets.ground.data = xy((p) => p.monitor.ground);
    sets.low.data = xy((p) => p.monitor.ground_low);
    sets.high.data = xy((p) => p.monitor.ground_high);
    klSet.data = xy((p) => p.metrics.teacher_kl);
    monitor.update(); kl.update();
    const body = root.querySelector("#monitor-table tbody");
    body.replaceChildren();
    for (const p of sorted) {
      const tr = document.createElement("tr");
      tr.dataset.step = p.step;
      cell(tr, String(p.step) + (p.step === best ? " ★ best" : ""));
      cell(tr, fmt(p.metrics.oracle));
      cell(tr, fmt(p.metrics.teacher_agreement));
      cell(tr, p.metrics.teacher_kl == null ? "—" : p.metrics.teacher_kl.toFixed(4));
      cell(tr, fmt(p.metrics.win_rate));
      const action = cell(tr, "");
      if (p.checkpoint_id) {
        const button = document.createElement("button");
        button.type = "button"; button.className = "button register-checkpoint"; button.textContent = "Register as model version";
        button.addEventListener("click", () => {
          const form = document.getElementById("register-form");
          form.action = root.dataset.registerUrl + p.step + "/register";
          form.submit();
        });
        action.appendChild(button);
      }
      body.appendChild(tr);
    }
    const empty = document.getElementById("monitor-empty");
    if (empty) empty.hidden = sorted.length > 0;
  }

  function apply(state) {
    for (const p of state.points) points.set(p.step, p);
    best = state.best_step;
    const badge = document.getElementById("hacking-badge");
    badge.hidden = !state.verdict.hacking;
    badge.textContent = state.verdict.hacking ? `teacher hacking (${state.verdict.level})` : "";
    badge.title = state.verdict.message || badge.title;
    redraw();
  }

  const refresh = () => fetch(root.dataset.monitorUrl, { credentials: "same-origin" }).then((r) => r.json()).then(apply);
  refresh();
  // Its own socket on the run group, asking for no metric points (the charts above have their own).
  window.DistilleryLive.liveSocket(page.dataset.ws, {
    query: () => "after=2147483647",
    onMessage: (msg) => {
      if (msg.event === "run.checkpoint_eval") { points.set(msg.point.step, msg.point); redraw(); refresh(); }
      else if (msg.event === "run.snapshot") refresh();  // (re)connected: catch up on what was missed
    },
  });
})();
