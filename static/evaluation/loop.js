// The loop page's chart: student and teacher oracle accuracy per round, and human judgements in.
(function () {
  const canvas = document.getElementById("rounds-chart");
  const data = JSON.parse(document.getElementById("rounds-data").textContent || "null");
  if (!canvas || !data || !window.Chart) return;
  new Chart(canvas, {
    data: {
      labels: data.labels,
      datasets: [
        { type: "line", label: "student oracle accuracy", data: data.student, borderColor: "#3158d4", yAxisID: "acc", spanGaps: true },
        { type: "line", label: "teacher oracle accuracy", data: data.teacher, borderColor: "#9ca3af", borderDash: [4, 4], yAxisID: "acc", spanGaps: true },
        { type: "bar", label: "judgements in", data: data.judgements, backgroundColor: "rgba(46,125,50,.35)", yAxisID: "n" },
      ],
    },
    options: { animation: false, scales: { acc: { position: "left", min: 0, max: 1, title: { display: true, text: "accuracy" } },
                                           n: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } } } },
  });
})();
