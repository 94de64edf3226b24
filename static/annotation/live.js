/* A reconnecting project socket: openSocket(path, onMessage). On connect the server sends the
   current snapshot, so a reconnecting page catches up without reloading. */
window.openSocket = function (path, onMessage) {
  let delay = 500;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
    ws.onopen = () => { delay = 500; document.body.dataset.live = "on"; };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      document.body.dataset.live = "off";
      if (e.code === 4403) return;  // not allowed: do not hammer the server
      setTimeout(connect, delay); delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
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
