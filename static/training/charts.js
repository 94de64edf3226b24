/* Chart.js helpers shared by the run page and the comparison: which metric goes on which chart,
   a colour palette, and a line chart tuned for streaming (no animation, pre-parsed {x, y} points). */
(function () {
  "use strict";
  const GROUPS = [
    { id: "loss", title: "Loss", match: (k) => k === "loss" || /(^|\/)(loss|nll|ce)$/.test(k) },
    { id: "rewards", title: "Rewards: chosen, rejected, margins", match: (k) => /(^|\/)rewards\/(chosen|rejected|margins)$/.test(k) },
    { id: "accuracies", title: "Reward accuracy", match: (k) => /(^|\/)rewards\/accuracies$/.test(k) },
    { id: "logps", title: "Log-probs", match: (k) => /(^|\/)logps\//.test(k) },
    { id: "kl", title: "KL to the teacher", match: (k) => /(^|\/)(kl|divergence)(\/|$)/.test(k) },
    { id: "lr", title: "Learning rate", match: (k) => k === "lr" },
    { id: "tokens_per_s", title: "Tokens / s", match: (k) => k === "tokens_per_s" },
    { id: "memory_mb", title: "Memory (MB)", match: (k) => k === "memory_mb" },
    { id: "other", title: "Other metrics", match: () => true },
  ];
  const PALETTE = ["#3158d4", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#ad1457", "#546e7a", "#9e9d24"];

  function groupOf(key) { return GROUPS.find((g) => g.match(key)); }

  // Axis labels people can read: 5e-5 and 1.2e-4 for learning rates, not Chart.js's 5.00000E-5.
  function compactTick(value) {
    if (value === 0) return "0";
    const abs = Math.abs(value);
    if (abs < 1e-3 || abs >= 1e6) return Number(value.toPrecision(3)).toExponential().replace("e+", "e");
    return String(Number(value.toPrecision(4)));
  }

  function lineChart(canvas, { xTitle = "step", logY = false } = {}) {
    return new Chart(canvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
        scales: { x: { type: "linear", title: { display: true, text: xTitle } },
                  y: { type: logY ? "logarithmic" : "linear", ticks: { callback: compactTick } } },
        plugins: { legend: { labels: { boxWidth: 12 } }, decimation: { enabled: true, algorithm: "lttb" } },
      },
    });
  }

  function dataset(label, index) {
    const colour = PALETTE[index % PALETTE.length];
    return { label, data: [], borderColor: colour, backgroundColor: colour };
  }

  window.DistilleryCharts = { GROUPS, PALETTE, groupOf, lineChart, dataset, compactTick };
})();
