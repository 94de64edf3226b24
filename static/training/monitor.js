/* Checkpoint evaluations and the teacher-hacking monitor. `DistilleryMonitor.chart(canvas)` draws
   one run's proxy (closeness to the teacher) and ground truth (with its 95% band) per checkpoint;
   the run page catches up from monitor.json on load (a reload shows every point) and then follows
   live `run.checkpoint_eval` events on the run page's one socket (static/training/run.js); the
   compare page draws one chart per run.
   The verdict is always the server's (webapp/training/monitor.py). Text goes in via textContent. */
(function () {
  "use strict";
  const C = window.DistilleryCharts;

  function chart(canvas) {
    const c = C.lineChart(canvas);
    c.options.scales.y.title = { display: true, text: "score (0–1)" };
    c.options.elements.point.radius = 3;
    c.options.plugins.decimation.enabled = false;
    const band = (label) => Object.assign(C.dataset(label, 2), { borderDash: [4, 4], pointRadius: 0 });
    const sets = { proxy: C.dataset("proxy", 0), ground: C.dataset("ground truth", 2),
                   low: band("ground truth 95% low"), high: band("ground truth 95% high") };
    c.data.datasets = [sets.proxy, sets.ground, sets.low, sets.high];
    return {
      chart: c,
      draw(points) {
        const sorted = [...points].sort((a, b) => a.step - b.step);
        const xy = (f) => sorted.filter((p) => f(p) != null).map((p) => ({ x: p.step, y: f(p) }));
        if (sorted.length) {
          sets.proxy.label = "proxy: " + sorted[0].monitor.proxy_name;
          sets.ground.label = "ground truth: " + sorted[0].monitor.ground_name;
        }
        sets.proxy.data = xy((p) => p.monitor.proxy);
        sets.ground.data = xy((p) => p.monitor.ground);
        sets.low.data = xy((p) => p.monitor.ground_low);
        sets.high.data = xy((p) => p.monitor.ground_high);
        c.update();
      },
    };
  }

  function showVerdict(badge, verdict) {
    badge.hidden = !verdict.hacking;
    badge.textContent = verdict.hacking ? (verdict.badge || "teacher hacking") : "";
    badge.classList.toggle("badge-red", Boolean(verdict.hacking && !verdict.recovered));
    if (verdict.message) badge.title = verdict.message;
  }

  const fetchState = (url) => fetch(url, { credentials: "same-origin" }).then((r) => r.json());
  window.DistilleryMonitor = { chart, showVerdict, fetchState };

  // The compare page: one monitor per selected run.
  for (const card of document.querySelectorAll(".monitor-card[data-monitor-url]")) {
    const m = chart(card.querySelector("canvas"));
    fetchState(card.dataset.monitorUrl).then((state) => {
      m.draw(state.points);
      showVerdict(card.querySelector(".hacking-badge"), state.verdict);
      card.querySelector(".monitor-empty").hidden = state.points.length > 0;
    });
  }

  // The run page.
  const root = document.getElementById("monitor");
  const page = document.getElementById("run-page");
  if (!root || !page || !document.getElementById("monitor-chart")) return;
  const points = new Map();  // step -> point
  let best = null;
  const monitor = chart(document.getElementById("monitor-chart"));
  const kl = C.lineChart(document.getElementById("monitor-kl-chart"));
  kl.options.scales.y.title = { display: true, text: "nats / token" };
  kl.options.elements.point.radius = 3;
  const klSet = C.dataset("KL(teacher ‖ student)", 1);
  kl.data.datasets = [klSet];

  const fmt = (e) => (e ? `${e.value.toFixed(3)} [${e.low.toFixed(3)}, ${e.high.toFixed(3)}]` : "—");
  function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }

  function redraw() {
    const sorted = [...points.values()].sort((a, b) => a.step - b.step);
    monitor.draw(sorted);
    klSet.data = sorted.filter((p) => p.metrics.teacher_kl != null).map((p) => ({ x: p.step, y: p.metrics.teacher_kl }));
    kl.update();
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
    document.getElementById("monitor-empty").hidden = sorted.length > 0;
    document.getElementById("monitor-count").textContent = String(sorted.length);
  }

  function apply(state) {
    for (const p of state.points) points.set(p.step, p);
    best = state.best_step;
    showVerdict(document.getElementById("hacking-badge"), state.verdict);
    redraw();
  }

  window.distilleryMonitor = { points, chart: monitor.chart };  // for people poking in the console, and tests
  const refresh = () => fetchState(root.dataset.monitorUrl).then(apply);
  refresh();
  // The run page's own socket (run.js), not a second connection: its run.checkpoint_eval events, and
  // a catch-up from monitor.json on every (re)connect (the run.snapshot), for evaluations missed meanwhile.
  window.distilleryRun.socket.subscribe((msg) => {
    if (msg.event === "run.checkpoint_eval") { points.set(msg.point.step, msg.point); redraw(); refresh(); }
    else if (msg.event === "run.snapshot") refresh();
  });
})();
