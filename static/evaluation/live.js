// Live updates for the evaluation pages over the project's evaluation socket. Rows and panels carry
// data-evaluation / data-round ids; progress bars and status labels update in place, and the page
// reloads (debounced) when something it shows has finished or changed, as named in data-reload-on:
// "evaluation:<id>" (that evaluation reached an end state), "results:<id>", "leaderboard", "rounds".
(function () {
  const script = document.currentScript;
  const path = script.dataset.socket;
  const reloadOn = (script.dataset.reloadOn || "").split(",").filter(Boolean);
  const ended = new Set(["succeeded", "failed", "cancelled"]);
  let reloadTimer = null;

  function reloadSoon() {
    if (document.activeElement && ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => window.location.reload(), 600);
  }

  function etaText(seconds) {  // the job's own estimate (webapp.lifecycle), from this attempt's rate
    return seconds < 90 ? seconds + " s" : seconds < 5400 ? Math.round(seconds / 60) + " min" : (seconds / 3600).toFixed(1) + " h";
  }

  function paint(selector, state) {
    document.querySelectorAll(selector).forEach((el) => {
      const status = el.querySelector("[data-status]");
      if (status) { status.textContent = state.status; status.className = "status status-" + state.status; }
      const stage = el.querySelector("[data-stage]");
      if (stage) stage.textContent = state.stage ? state.stage + " · " + state.done + "/" + state.total +
        (state.eta != null ? " · about " + etaText(state.eta) + " left" : "") : "";
      const bar = el.querySelector("[data-progress] > div");
      if (bar && state.total) bar.style.width = Math.round(100 * state.done / state.total) + "%";
      const error = el.querySelector("[data-error]");
      if (error) error.textContent = state.error || "";
    });
  }

  function handle(msg) {
    if (msg.event === "snapshot") {
      msg.evaluations.forEach((s) => paint('[data-evaluation="' + s.id + '"]', s));
      msg.rounds.forEach((s) => paint('[data-round="' + s.id + '"]', s));
    } else if (msg.event === "evaluation") {
      paint('[data-evaluation="' + msg.id + '"]', msg);
      if (ended.has(msg.status) && reloadOn.includes("evaluation:" + msg.id)) reloadSoon();
    } else if (msg.event === "evaluation_results" && reloadOn.includes("results:" + msg.id)) {
      reloadSoon();
    } else if (msg.event === "leaderboard" && reloadOn.includes("leaderboard")) {
      reloadSoon();
    } else if (msg.event === "round") {
      paint('[data-round="' + msg.id + '"]', msg);
      if (ended.has(msg.status) && reloadOn.includes("rounds")) reloadSoon();
    }
  }

  // The one socket helper (static/projects/socket.js): data-live="on" once the snapshot arrived.
  window.DistillerySocket.liveSocket(path, { onMessage: handle, onState: window.DistillerySocket.bodyLive, maxDelay: 15000 });
})();
