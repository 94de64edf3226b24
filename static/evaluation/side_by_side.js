// The side-by-side page's token heatmap and keyboard shortcuts. Token text is model output, so it is
// only ever set with textContent. Signals per answer come from the page's json_script "signals":
// {output id: {tokens, teacher_logp, kl, advantage}} (kl/advantage null when not computed).
(function () {
  const signals = JSON.parse(document.getElementById("signals").textContent);
  const select = document.getElementById("signal");
  const SCALES = {
    // exp(log-prob): red = the teacher found the token unlikely, green = likely.
    teacher_logp: { color: (v) => `hsl(${Math.round(120 * Math.exp(v))}, 75%, 80%)`, low: "unlikely", high: "likely",
                    gradient: "linear-gradient(90deg, hsl(0,75%,80%), hsl(60,75%,80%), hsl(120,75%,80%))" },
    // KL grows red; scaled by the largest value on the page.
    kl: { color: (v, max) => `rgba(220, 38, 38, ${Math.min(1, v / max).toFixed(3)})`, low: "0", high: "max KL",
          gradient: "linear-gradient(90deg, rgba(220,38,38,0), rgba(220,38,38,1))" },
    // Advantage: blue where the DPO teacher likes the token more than the SFT teacher, red where less.
    advantage: { color: (v, max) => v >= 0 ? `rgba(37, 99, 235, ${Math.min(1, v / max).toFixed(3)})`
                                           : `rgba(220, 38, 38, ${Math.min(1, -v / max).toFixed(3)})`,
                 low: "A < 0", high: "A > 0", gradient: "linear-gradient(90deg, rgb(220,38,38), #fff, rgb(37,99,235))" },
  };

  function maxAbs(kind) {
    let max = 1e-6;
    Object.values(signals).forEach((s) => (s[kind] || []).forEach((v) => { max = Math.max(max, Math.abs(v)); }));
    return max;
  }

  function paint() {
    const kind = select.value, scale = SCALES[kind], max = maxAbs(kind);
    document.getElementById("legend-low").textContent = scale.low;
    document.getElementById("legend-high").textContent = scale.high + (kind === "teacher_logp" ? "" : " (" + max.toFixed(2) + ")");
    document.getElementById("legend-scale").style.background = scale.gradient;
    document.querySelectorAll(".heatmap[data-output]").forEach((box) => {
      box.replaceChildren();
      const s = signals[box.dataset.output] || {};
      const values = s[kind];
      if (!values) {
        const note = document.createElement("span");
        note.className = "none";
        note.textContent = kind === "advantage" ? "no advantage: pick the teacher after DPO and after SFT when starting the evaluation"
                                                : "not available for this answer (different vocabularies)";
        box.appendChild(note);
        return;
      }
      s.tokens.forEach((token, i) => {
        const span = document.createElement("span");
        span.textContent = token;
        span.style.background = scale.color(values[i], max);
        span.title = token + "  " + kind + " = " + values[i].toFixed(3);
        box.appendChild(span);
      });
    });
    const url = new URL(location.href);
    url.searchParams.set("signal", kind);
    history.replaceState(null, "", url);
  }

  const rows = Array.from(document.querySelectorAll("[data-row]"));
  let current = -1;
  function go(step) {
    if (!rows.length) return;
    if (current >= 0) rows[current].classList.remove("current");
    current = Math.max(0, Math.min(rows.length - 1, current + step));
    rows[current].classList.add("current");
    rows[current].scrollIntoView({ block: "start", behavior: "smooth" });
  }

  document.addEventListener("keydown", (e) => {
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") go(1);
    else if (e.key === "k") go(-1);
    else if (e.key === "/") { e.preventDefault(); document.getElementById("search").focus(); }
    else if (["1", "2", "3"].includes(e.key)) { select.selectedIndex = Number(e.key) - 1; paint(); }
  });
  select.addEventListener("change", paint);
  paint();
})();
