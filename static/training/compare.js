/* Run comparison: fetches each selected run's metric history and overlays one metric of all of
   them on one chart; x can be step, epoch or tokens seen. */
(function () {
  "use strict";
  const { lineChart, dataset } = window.DistilleryCharts;
  const section = document.getElementById("overlay");
  if (!section) return;
  const metricSelect = document.getElementById("metric-select");
  const xSelect = document.getElementById("x-select");
  const ids = section.dataset.runs.split(",").filter(Boolean);
  const chart = lineChart(document.getElementById("overlay-chart"));
  const histories = [];
  window.distilleryCompare = { chart, histories };

  function draw() {
    const metric = metricSelect.value, x = xSelect.value;
    chart.data.datasets = histories.map((h, i) => {
      const ds = dataset(`${h.run.name} (#${h.run.id})`, i);
      ds.data = h.points.filter((p) => p.values[metric] !== undefined).map((p) => ({ x: p[x], y: p.values[metric] }));
      return ds;
    });
    chart.options.scales.x.title.text = x;
    chart.update("none");
  }

  Promise.all(ids.map((id) => fetch(`${section.dataset.pointsBase}${id}/points.json`).then((r) => r.json())))
    .then((results) => {
      histories.push(...results);
      const keys = new Set();
      results.forEach((h) => h.points.forEach((p) => Object.keys(p.values).forEach((k) => keys.add(k))));
      for (const key of [...keys].sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)))) {
        const option = document.createElement("option");
        option.value = key; option.textContent = key;
        metricSelect.appendChild(option);
      }
      draw();
    });
  metricSelect.addEventListener("change", draw);
  xSelect.addEventListener("change", draw);
})();
