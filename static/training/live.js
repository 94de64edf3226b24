/* Small shared helpers of the training pages; their live socket is the one every page uses
   (static/projects/socket.js, loaded by base.html), re-exported here for run.js and runs.js.
   Model output and names are untrusted: everything goes into the page through textContent. */
(function () {
  "use strict";
  const { liveSocket } = window.DistillerySocket;

  function formatDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "";
    seconds = Math.round(seconds);
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
  }

  function setStatusBadge(el, run) {
    el.textContent = run.status_label + (run.cancel_requested && run.status === "running" ? " (stopping…)" : "");
    el.className = "badge status-" + run.status;
    el.dataset.status = run.status;
  }

  window.DistilleryLive = { liveSocket, formatDuration, setStatusBadge };
})();
