/* A project socket for the annotation and generation pages: openSocket(path, onMessage), the one
   socket helper of every page (static/projects/socket.js: backoff, no retry on 4403, and
   <body data-live="on"> only once the server's catch-up snapshot has arrived, not on open). */
window.openSocket = function (path, onMessage) {
  return window.DistillerySocket.liveSocket(path, { onMessage, onState: window.DistillerySocket.bodyLive });
};

/* Generation job progress bars: elements [data-job-id] holding .bar, .job-status and .job-count. */
window.watchGenerationJobs = function (slug, reloadOnFinish) {
  function apply(m) {
    document.querySelectorAll('[data-job-id="' + m.job + '"]').forEach((el) => {
      const pct = m.total ? Math.round((100 * m.done) / m.total) : 0;
      const bar = el.querySelector(".bar"); if (bar) bar.style.width = pct + "%";
      const status = el.querySelector(".job-status"); if (status) status.textContent = m.status;
      const count = el.querySelector(".job-count"); if (count) count.textContent = m.done + " / " + m.total;
      const err = el.querySelector(".job-error"); if (err) err.textContent = m.error || "";
      const before = el.dataset.status; el.dataset.status = m.status;
      if (reloadOnFinish && before && before !== m.status && m.status === "succeeded") location.reload();
    });
  }
  openSocket("/ws/p/" + slug + "/generation/", (m) => {
    if (m.event === "generation.snapshot") m.jobs.forEach(apply);
    else if (m.event === "generation.progress") apply(m);
  });
};
