/* The generation job page while the job runs: polls outputs.json for answers stored since the last
   one shown and lists them newest first (as text: model output is never HTML), with the ETA. */
(function () {
  "use strict";
  const box = document.getElementById("live-outputs");
  if (!box) return;
  const list = document.getElementById("live-list"), eta = document.getElementById("eta");
  const KEEP = 50;
  let after = Number(box.dataset.after || 0), status = box.dataset.status;

  function etaText(m) {
    if (m.status === "queued") return "waiting for a GPU worker";
    if (m.status !== "running") return m.status;
    if (m.eta_seconds === null) return m.done + " / " + m.total + " · estimating time left…";
    const s = m.eta_seconds, text = s >= 3600 ? Math.round(s / 360) / 10 + " h" : s >= 60 ? Math.round(s / 60) + " min" : s + " s";
    const at = new Date(m.eta_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return m.done + " / " + m.total + " · about " + text + " left (done by " + at + ")";
  }

  function add(o) {
    const item = document.createElement("li");
    item.className = "live-output";
    item.dataset.id = o.id;
    const head = document.createElement("div");
    head.className = "muted";
    head.textContent = o.model + " #" + o.sample + " · " + o.tokens + " tok · prompt " + o.prompt_id + ": " + o.prompt.slice(0, 120);
    const text = document.createElement("pre");
    text.className = "generation-text";
    text.textContent = o.text;
    item.append(head, text);
    list.prepend(item);
    while (list.children.length > KEEP) list.lastElementChild.remove();
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.url + "?after=" + after, { credentials: "same-origin" });
      if (response.ok) {
        const m = await response.json();
        m.outputs.forEach((o) => { add(o); after = Math.max(after, o.id); });
        eta.textContent = etaText(m);
        document.querySelectorAll(".job-progress .job-count").forEach((el) => { el.textContent = m.done + " / " + m.total; });
        document.querySelectorAll(".job-progress .bar").forEach((el) => { el.style.width = (m.total ? Math.round(100 * m.done / m.total) : 0) + "%"; });
        box.dataset.status = m.status;
        if (m.status !== status && m.status === "succeeded") { location.reload(); return; }
        status = m.status;
        if (m.status !== "queued" && m.status !== "running") return;
      }
    } catch (e) { /* the server restarts: try again */ }
    setTimeout(poll, 1500);
  }
  poll();
})();
