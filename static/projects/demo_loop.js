/* The demo loop's progress on the project home: polls its status while it runs (texts as text). */
(function () {
  "use strict";
  const box = document.getElementById("demo-loop");
  if (!box || box.dataset.status !== "running") return;
  const list = document.getElementById("demo-loop-steps");

  function show(m) {
    list.replaceChildren(...m.steps.map((s, i) => {
      const li = document.createElement("li"), n = document.createElement("span"), body = document.createElement("div");
      li.className = "loop-step" + (s.done ? " done" : "") + (s.current ? " current" : "");
      n.className = "step-n"; n.textContent = s.done ? "✓" : String(i + 1);
      body.className = "step-body"; body.textContent = s.title;
      li.append(n, body); return li;
    }));
    document.getElementById("demo-loop-error").textContent = m.error || "";
    if (m.status === "succeeded" && m.evaluation) {
      const link = document.createElement("a");
      link.id = "demo-loop-evaluation";
      link.href = box.dataset.evaluations + m.evaluation + "/";
      link.textContent = "See the evaluation →";
      document.getElementById("demo-loop-result").replaceChildren(link);
    }
    box.dataset.status = m.status || "";
    document.getElementById("demo-loop-start").disabled = m.status === "running";
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (response.ok) {
        const m = await response.json();
        show(m);
        if (m.status === "succeeded") { location.reload(); return; }  // the loop's steps and counts above, fresh
        if (m.status !== "running") return;
      }
    } catch (e) { /* retry */ }
    setTimeout(poll, 2000);
  }
  poll();
})();
