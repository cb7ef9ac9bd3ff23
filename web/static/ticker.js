// Durations of what still runs keep counting between the page's updates: every element with
// class "elapsed" and a data-since shows data-base + the time since data-since (server clock,
// corrected by data-now, the server's time when the element was made). Same format as the server's.
(function () {
  "use strict";

  function text(seconds) {
    if (seconds < 0.1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 10) return seconds.toFixed(2) + " s";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    let minutes = Math.floor(seconds / 60);
    const secs = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + "m " + String(secs).padStart(2, "0") + "s";
    const hours = Math.floor(minutes / 60);
    minutes %= 60;
    return hours + "h " + String(minutes).padStart(2, "0") + "m";
  }

  const seenAt = new WeakMap(); // element -> the browser's clock when it was first seen

  function tick() {
    const now = Date.now() / 1000;
    for (const el of document.querySelectorAll(".elapsed[data-since]")) {
      if (!seenAt.has(el)) seenAt.set(el, now);
      const serverNow = Number(el.dataset.now) + (now - seenAt.get(el));
      el.textContent = text(Number(el.dataset.base) + serverNow - Number(el.dataset.since));
    }
  }

  window.TaskFlowDuration = text;
  setInterval(tick, 1000);
})();
