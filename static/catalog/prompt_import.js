/* A background prompt import's page: polls status.json until the job ends, then shows the result or
   the file's problems (as text). */
(function () {
  "use strict";
  const box = document.getElementById("prompt-import");
  if (!box) return;
  const $ = (id) => document.getElementById(id);

  function show(m) {
    $("import-status").textContent = m.status;
    $("import-stage").textContent = m.stage;
    $("import-bar").style.width = (m.total ? Math.round((100 * m.done) / m.total) : 0) + "%";
    if (m.status === "succeeded") {
      const result = $("import-result");
      result.textContent = "Imported " + m.created + " prompts (" + m.duplicates + " duplicates skipped). ";
      const base = box.dataset.setUrl.replace(/catalog\/$/, "catalog/prompts/");
      if (m.prompt_set) {
        const link = document.createElement("a");
        link.href = base + m.prompt_set + "/";
        link.textContent = "Open the prompt set →";
        result.appendChild(link);
      }
    }
    if (m.status === "failed" || m.status === "cancelled") {
      $("import-errors").hidden = false;
      $("import-error").textContent = m.error;
      const list = $("import-error-list");
      list.replaceChildren(...m.errors.map((e) => {
        const li = document.createElement("li"), code = document.createElement("code");
        li.className = "error"; code.textContent = e; li.appendChild(code); return li;
      }));
    }
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (response.ok) {
        const m = await response.json();
        show(m);
        if (m.status !== "queued" && m.status !== "running") return;
      }
    } catch (e) { /* server restarting: retry */ }
    setTimeout(poll, 1000);
  }
  if (box.dataset.status === "queued" || box.dataset.status === "running") poll();
})();
