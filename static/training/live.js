/* Live sockets for training pages: a WebSocket that reconnects with backoff and asks, on every
   (re)connect, only for what it has not seen (`?after=<last step>`); plus small shared helpers.
   Model output and names are untrusted: everything goes into the page through textContent. */
(function () {
  "use strict";

  function liveSocket(path, { onMessage, query, indicator }) {
    let delay = 500, socket = null, closed = false;
    const setIndicator = (text, cls) => {
      if (!indicator) return;
      indicator.textContent = text;
      indicator.className = "badge " + (cls || "");
    };
    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const q = query ? query() : "";
      socket = new WebSocket(scheme + location.host + path + (q ? "?" + q : ""));
      // "live" only once the server's catch-up has arrived: an open socket that the server closes
      // again (a refused or failed snapshot) must not look live, nor reset the backoff.
      let heard = false;
      socket.onopen = () => setIndicator("connecting…", "");
      socket.onmessage = (e) => {
        if (!heard) { heard = true; delay = 500; setIndicator("live", "badge-green"); }
        onMessage(JSON.parse(e.data));
      };
      socket.onclose = (e) => {
        if (closed) return;
        if (e.code === 4403) { setIndicator("no access", "badge-red"); return; }
        setIndicator("reconnecting…", "badge-red");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 5000);
      };
    }
    connect();
    return { close() { closed = true; if (socket) socket.close(); }, get socket() { return socket; } };
  }

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
