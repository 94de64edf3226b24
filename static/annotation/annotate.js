/* The annotation page. Talks to the JSON API (next / submit / skip / undo) so the next item loads
   without a page reload, and does everything from the keyboard:
     pairwise: 1 or ← first better · 2 or → second better · 3 tie · 4 both bad
     k-way:    ↑/↓ (or k/j) move focus · Shift+↑/↓ (or K/J) move the focused answer · t tie with the one above
     both:     Enter submit · s skip · u undo last · r rationale · Shift+1..4 flags · e expand all · m markdown/raw · ? help
   Model output is untrusted: markdown goes through marked with raw HTML escaped, then DOMPurify;
   the raw view uses textContent. */
(function () {
  "use strict";
  const root = document.getElementById("annotate");
  const api = root.dataset.api;
  const csrf = root.dataset.csrf;
  const FLAGS = ["wrong", "unsafe", "off-topic", "unsure"];
  const COLLAPSE_CHARS = 1200;
  let state = null;          // the current comparison payload
  let choice = null;         // pairwise: {kind: "chosen", id} | {kind: "tie"} | {kind: "both_bad"}
  let order = [];            // k-way: candidate ids, best first
  let tiedWithAbove = {};    // k-way: id -> true when tied with the previous one
  let focusIndex = 0;
  let flags = new Set();
  let shownAt = 0;
  let markdown = true;
  let busy = false;

  const $ = (sel) => root.querySelector(sel);

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  if (window.marked) {
    marked.use({ gfm: true, breaks: true, renderer: { html: (token) => escapeHtml(typeof token === "string" ? token : token.text) } });
  }
  function renderInto(el, text) {
    if (markdown && window.marked && window.DOMPurify) {
      el.innerHTML = DOMPurify.sanitize(marked.parse(String(text)), { USE_PROFILES: { html: true } });
      el.classList.add("md");
    } else {
      el.textContent = text;
      el.classList.remove("md");
    }
  }
  window.renderMarkdownInto = renderInto;

  function say(text, kind) {
    const box = $("#status-line");
    box.textContent = text || "";
    box.className = "status-line " + (kind || "");
  }

  async function call(path, body) {
    const opts = body === undefined ? { headers: { Accept: "application/json" } }
      : { method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" }, body: JSON.stringify(body) };
    const response = await fetch(api + path, opts);
    let data = {};
    try { data = await response.json(); } catch (e) { data = { error: "The server answered " + response.status + "." }; }
    return { ok: response.ok, status: response.status, data };
  }

  function updateProgress(data) {
    if (data.progress) {
      $("#mine").textContent = data.progress.mine;
      $("#available").textContent = data.progress.available;
      const waiting = data.progress.waiting || 0;  // open items on other people's screens (sent when the queue has none for you)
      $("#waiting").textContent = waiting ? waiting + " more are on other annotators' screens and come back if their leases lapse." : "";
    }
    if (data.counters) updateCounters(data.counters);
    $("#undo-btn").disabled = !data.can_undo;
  }
  function updateCounters(c) {
    ["pending", "done", "disputed"].forEach((k) => { const el = document.getElementById("count-" + k); if (el) el.textContent = c[k]; });
  }
  window.updateAnnotationCounters = updateCounters;

  function show(data) {
    updateProgress(data);
    state = data.comparison;
    choice = null; flags = new Set(); tiedWithAbove = {}; focusIndex = 0;
    $("#rationale").value = "";
    renderFlags();
    if (!state) {
      $("#item").hidden = true; $("#empty").hidden = false;
      root.dataset.comparison = "";
      return;
    }
    $("#item").hidden = false; $("#empty").hidden = true;
    root.dataset.comparison = state.id;
    root.dataset.kind = state.kind;
    renderPrompt();
    order = state.candidates.map((c) => c.id);
    $("#pairwise-controls").hidden = state.kind !== "pairwise";
    $("#kway-controls").hidden = state.kind === "pairwise";
    renderCandidates();
    shownAt = performance.now();
    $("#item-id").textContent = "#" + state.id;
  }

  function renderPrompt() {
    const prompt = $("#prompt");
    prompt.replaceChildren();
    if (state.prompt.messages) {
      state.prompt.messages.forEach((m) => {
        const row = document.createElement("div"); row.className = "msg";
        const role = document.createElement("b"); role.textContent = m.role + ": ";
        const body = document.createElement("div"); renderInto(body, m.content);
        row.append(role, body); prompt.append(row);
      });
    } else {
      renderInto(prompt, state.prompt.text);
    }
  }

  function candidateById(id) { return state.candidates.find((c) => c.id === id); }

  function renderCandidates() {
    const box = $("#candidates");
    box.className = state.kind === "pairwise" ? "candidates pairwise" : "candidates kway";
    box.replaceChildren();
    let rank = 0;
    order.forEach((id, index) => {
      const c = candidateById(id);
      if (!tiedWithAbove[id]) rank = index + 1;
      const card = document.createElement("article");
      card.className = "candidate";
      card.dataset.id = id;
      if (state.kind !== "pairwise") {
        card.classList.toggle("focused", index === focusIndex);
        card.classList.toggle("tied", !!tiedWithAbove[id]);
      } else if (choice) {
        card.classList.toggle("chosen", choice.kind === "chosen" && choice.id === id);
        card.classList.toggle("rejected", choice.kind === "chosen" && choice.id !== id);
        card.classList.toggle("even", choice.kind === "tie");
        card.classList.toggle("bad", choice.kind === "both_bad");
      }
      const head = document.createElement("header");
      head.textContent = state.kind === "pairwise" ? "Answer " + c.label + " (" + (index + 1) + ")"
        : "Rank " + rank + (tiedWithAbove[id] ? " (tie)" : "") + " · answer " + c.label;
      const body = document.createElement("div");
      body.className = "candidate-text";
      renderInto(body, c.text);
      card.append(head, body);
      if (c.text.length > COLLAPSE_CHARS || c.text.split("\n").length > 24) {
        body.classList.add("collapsed");
        const more = document.createElement("button");
        more.type = "button"; more.className = "link expand"; more.textContent = "Show all (e)";
        more.onclick = () => { body.classList.toggle("collapsed"); more.textContent = body.classList.contains("collapsed") ? "Show all (e)" : "Show less (e)"; };
        card.append(more);
      }
      if (state.kind === "pairwise") card.onclick = (e) => { if (!e.target.closest("a,button")) choose({ kind: "chosen", id }); };
      box.append(card);
    });
    if (box._sortable) { box._sortable.destroy(); box._sortable = null; }
    if (state.kind !== "pairwise" && window.Sortable) {
      box._sortable = Sortable.create(box, { animation: 120, onEnd: () => {
        order = Array.from(box.children).map((el) => Number(el.dataset.id));
        renderCandidates();
      } });
    }
    $("#choice-label").textContent = describeChoice();
  }

  function describeChoice() {
    if (!state) return "";
    if (state.kind !== "pairwise") return "Ranking: " + groups().map((g) => g.map((id) => candidateById(id).label).join(" = ")).join(" > ");
    if (!choice) return "No verdict yet";
    if (choice.kind === "tie") return "Tie";
    if (choice.kind === "both_bad") return "Both bad";
    return "Answer " + candidateById(choice.id).label + " is better";
  }

  function choose(c) { choice = c; renderCandidates(); }

  function groups() {
    const out = [];
    order.forEach((id) => { if (tiedWithAbove[id] && out.length) out[out.length - 1].push(id); else out.push([id]); });
    return out;
  }

  function renderFlags() {
    root.querySelectorAll("[data-flag]").forEach((el) => { el.checked = flags.has(el.dataset.flag); });
  }

  async function submit() {
    if (!state || busy) return;
    let ranking, bothBad = false;
    if (state.kind === "pairwise") {
      if (!choice) { say("Choose first: 1 / 2 (or ← / →), 3 tie, 4 both bad.", "warn"); return; }
      const [x, y] = order;
      if (choice.kind === "chosen") ranking = [[choice.id], [choice.id === x ? y : x]];
      else { ranking = [[x, y]]; bothBad = choice.kind === "both_bad"; }
    } else {
      ranking = groups();
    }
    busy = true;
    const body = { comparison: state.id, ranking, both_bad: bothBad, rationale: $("#rationale").value, flags: Array.from(flags),
                   time_spent_ms: Math.round(performance.now() - shownAt) };
    const result = await call("submit", body);
    busy = false;
    if (!result.ok) { say(result.data.error || "Could not save.", "error"); return; }
    say("Saved judgement of #" + state.id + ". Press u to undo.", "ok");
    await loadNext();
  }

  async function loadNext() {
    busy = true;
    const result = await call("next");
    busy = false;
    if (!result.ok) { say(result.data.error || "Could not load the next item.", "error"); return; }
    show(result.data);
  }

  async function skip() {
    if (!state || busy) return;
    busy = true;
    const result = await call("skip", { comparison: state.id });
    busy = false;
    if (!result.ok) { say(result.data.error || "Could not skip.", "error"); return; }
    say("Skipped #" + state.id + ".", "ok");
    show(result.data);
  }

  async function undo() {
    if (busy) return;
    busy = true;
    const result = await call("undo", {});
    busy = false;
    if (!result.ok) { say(result.data.error || "Nothing to undo.", "warn"); return; }
    say("Undid your judgement of #" + result.data.undone + ": judge it again.", "ok");
    show(result.data);
  }

  function toggleFlag(i) {
    const f = FLAGS[i]; if (!f) return;
    if (flags.has(f)) flags.delete(f); else flags.add(f);
    renderFlags();
  }

  function moveFocused(delta) {
    const j = focusIndex + delta;
    if (j < 0 || j >= order.length) return;
    [order[focusIndex], order[j]] = [order[j], order[focusIndex]];
    focusIndex = j;
    renderCandidates();
  }

  function onKey(e) {
    const typing = e.target.closest && e.target.closest("textarea, input, select");
    if (typing) {
      if (e.key === "Escape") e.target.blur();
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.target.blur(); submit(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") { $("#keys").open = !$("#keys").open; return; }
    if (e.key === "u") { e.preventDefault(); undo(); return; }
    if (!state) return;
    if (e.shiftKey && /^Digit[1-4]$/.test(e.code)) { e.preventDefault(); toggleFlag(Number(e.code.slice(5)) - 1); return; }
    const pairwise = state.kind === "pairwise";
    const k = e.key;
    if (k === "Enter") { e.preventDefault(); submit(); }
    else if (k === "s") { e.preventDefault(); skip(); }
    else if (k === "r") { e.preventDefault(); $("#rationale").focus(); }
    else if (k === "e") { root.querySelectorAll(".expand").forEach((b) => b.click()); }
    else if (k === "m") { markdown = !markdown; renderPrompt(); renderCandidates(); renderGuidelines(); }
    else if (pairwise && (k === "1" || k === "ArrowLeft")) { e.preventDefault(); choose({ kind: "chosen", id: order[0] }); }
    else if (pairwise && (k === "2" || k === "ArrowRight")) { e.preventDefault(); choose({ kind: "chosen", id: order[1] }); }
    else if (pairwise && k === "3") choose({ kind: "tie" });
    else if (pairwise && k === "4") choose({ kind: "both_bad" });
    else if (!pairwise && (k === "ArrowUp" || k === "ArrowDown" || k === "K" || k === "J") && e.shiftKey) { e.preventDefault(); moveFocused(k === "ArrowUp" || k === "K" ? -1 : 1); }
    else if (!pairwise && (k === "ArrowUp" || k === "k")) { e.preventDefault(); focusIndex = Math.max(0, focusIndex - 1); renderCandidates(); }
    else if (!pairwise && (k === "ArrowDown" || k === "j")) { e.preventDefault(); focusIndex = Math.min(order.length - 1, focusIndex + 1); renderCandidates(); }
    else if (!pairwise && k === "t" && focusIndex > 0) { const id = order[focusIndex]; tiedWithAbove[id] = !tiedWithAbove[id]; renderCandidates(); }
  }

  document.addEventListener("keydown", onKey);
  root.querySelectorAll("[data-flag]").forEach((el) => el.addEventListener("change", () => {
    if (el.checked) flags.add(el.dataset.flag); else flags.delete(el.dataset.flag);
  }));
  $("#btn-a").onclick = () => state && choose({ kind: "chosen", id: order[0] });
  $("#btn-b").onclick = () => state && choose({ kind: "chosen", id: order[1] });
  $("#btn-tie").onclick = () => state && choose({ kind: "tie" });
  $("#btn-bad").onclick = () => state && choose({ kind: "both_bad" });
  root.querySelectorAll(".submit-btn").forEach((b) => { b.onclick = submit; });
  $("#skip-btn").onclick = skip;
  $("#undo-btn").onclick = undo;

  function renderGuidelines() {
    const source = document.getElementById("guidelines-source");
    if (source) renderInto(document.getElementById("guidelines"), JSON.parse(source.textContent));
  }
  renderGuidelines();
  if (window.openSocket) {
    openSocket("/ws/p/" + root.dataset.slug + "/annotation/", (m) => { if (m.event === "annotation.counters") updateCounters(m); });
  }
  loadNext();
})();
