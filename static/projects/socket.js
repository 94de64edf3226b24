/* The one live-socket helper of every page (its server side is webapp/projects/live.py's
   ProjectSocket, which sends the current state on connect): a WebSocket that reconnects with
   backoff and asks, on every (re)connect, only for what the page has not seen (`query()`).
   It says "live" only once the server's catch-up has arrived: an open socket that the server closes
   again (a refused or failed snapshot) must not look live, nor reset the backoff.
   States, for `onState` and the optional badge `indicator`: connecting, live, reconnecting, refused
   (4403: no access, and no retry). Several parts of one page share its socket through
   `subscribe(fn)`, so a page opens one connection, not one per widget. Loaded by base.html. */
(function () {
  "use strict";

  const BADGE = { connecting: ["connecting…", ""], live: ["live", "badge-green"],
                  reconnecting: ["reconnecting…", "badge-red"], refused: ["no access", "badge-red"] };

  function liveSocket(path, { onMessage, query, indicator, onState, maxDelay = 5000 } = {}) {
    const listeners = onMessage ? [onMessage] : [];
    let delay = 500, socket = null, closed = false, state = "connecting";
    function setState(next) {
      state = next;
      if (indicator) {
        indicator.textContent = BADGE[next][0];
        indicator.className = "badge " + BADGE[next][1];
      }
      if (onState) onState(next);
    }
    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const q = query ? query() : "";
      socket = new WebSocket(scheme + location.host + path + (q ? "?" + q : ""));
      let heard = false;
      socket.onopen = () => setState("connecting");
      socket.onmessage = (e) => {
        if (!heard) { heard = true; delay = 500; setState("live"); }
        const message = JSON.parse(e.data);
        for (const listener of listeners) listener(message);
      };
      socket.onclose = (e) => {
        if (closed) return;
        if (e.code === 4403) { setState("refused"); return; }
        setState("reconnecting");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, maxDelay);
      };
    }
    setState("connecting");
    connect();
    return {
      subscribe(listener) { listeners.push(listener); },
      close() { closed = true; if (socket) socket.close(); },
      get socket() { return socket; },
      get state() { return state; },
    };
  }

  /* For pages without a badge: <body data-live="on"> while live (caught up), "off" otherwise. */
  function bodyLive(state) { document.body.dataset.live = state === "live" ? "on" : "off"; }

  window.DistillerySocket = { liveSocket, bodyLive };
})();
