/* Live run lists (the training page and the project home's section): the project's socket sends
   every run's state on connect and each status change after; rows are updated in place, new runs
   are added on top. */
(function () {
  "use strict";
  const { liveSocket, setStatusBadge } = window.DistilleryLive;
  const table = document.getElementById("runs-table");
  if (!table) return;
  const body = table.querySelector("tbody");
  const compact = table.dataset.compact === "1";
  const limit = Number(table.dataset.limit || 0);

  function cell(tr, child) {
    const td = document.createElement("td");
    if (typeof child === "string") td.textContent = child; else if (child) td.appendChild(child);
    tr.appendChild(td);
    return td;
  }

  function newRow(run) {
    const tr = document.createElement("tr");
    tr.dataset.runId = run.id;
    if (!compact) {
      const box = document.createElement("input");
      box.type = "checkbox"; box.name = "runs"; box.value = run.id;
      cell(tr, box);
    }
    const link = document.createElement("a");
    link.href = table.dataset.base + run.id + "/";
    link.textContent = run.name;
    cell(tr, link);
    cell(tr, run.method_label);
    const badge = document.createElement("span");
    badge.dataset.field = "status";
    cell(tr, badge);
    const progress = cell(tr, null);
    progress.className = "progress-cell";
    const outer = document.createElement("div"); outer.className = "progress";
    const bar = document.createElement("div"); bar.dataset.field = "bar";
    outer.appendChild(bar);
    const steps = document.createElement("span"); steps.className = "muted"; steps.dataset.field = "steps";
    progress.append(outer, steps);
    if (!compact) for (let i = 0; i < 4; i++) cell(tr, "");
    return tr;
  }

  function update(run, prepend) {
    let tr = body.querySelector(`tr[data-run-id="${run.id}"]`);
    if (!tr) {
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      tr = newRow(run);
      if (prepend) body.prepend(tr); else body.appendChild(tr);
    }
    setStatusBadge(tr.querySelector('[data-field="status"]'), run);
    tr.querySelector('[data-field="bar"]').style.width = run.total_steps ? `${Math.min(100, (100 * run.step) / run.total_steps)}%` : "0";
    tr.querySelector('[data-field="steps"]').textContent = `${run.step}/${run.total_steps || "?"}` + (run.stage && run.active ? ` · ${run.stage}` : "");
  }

  function onMessage(message) {
    if (message.event === "runs.snapshot") {
      const runs = limit ? message.runs.slice(0, limit) : message.runs;
      if (compact && !runs.length) body.querySelector("tr.empty td").textContent = "No runs yet.";
      runs.forEach((run) => update(run, false));
    } else if (message.event === "runs.status") {
      update(message.run, true);
    }
  }
  liveSocket(table.dataset.ws, { onMessage, indicator: document.getElementById("live-indicator") });
})();
