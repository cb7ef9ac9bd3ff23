// The status page keeps its runs table and counters current: /live sends "change" whenever a run
// or task changes, and the page then fetches /parts/runs with its own filters and page.
(function () {
  "use strict";

  const table = document.getElementById("part-runs");
  const going = document.getElementById("going");
  const liveStatus = document.getElementById("live-status");
  if (!table) return;
  let busy = false;
  let again = false;

  function setLive(state, text) {
    liveStatus.dataset.live = state;
    liveStatus.textContent = text;
  }

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const res = await fetch("/parts/runs" + location.search, { cache: "no-store" });
      if (res.ok) {
        const data = await res.json();
        table.innerHTML = data.runs;
        going.innerHTML = data.going;
      }
    } catch (err) {
      // A network hiccup: the next change tries again.
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  const source = new EventSource("/live");
  source.addEventListener("open", function () { setLive("live", "live"); });
  source.addEventListener("change", refresh);
  source.addEventListener("error", function () { setLive("reconnecting", "reconnecting…"); });
})();
