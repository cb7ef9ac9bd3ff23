// Buttons that act (trigger, cancel, re-run) call the JSON API with fetch(), sending JSON.
// With TASKFLOW_API_TOKEN set (body data-token="required"), the page asks for the token once and
// keeps it in localStorage; until it has one, the buttons stay hidden and the page is read-only.
(function () {
  "use strict";

  const KEY = "taskflow.apiToken";
  const body = document.body;
  const notice = document.getElementById("action-notice");
  const required = body.dataset.token === "required";

  function token() {
    try {
      return localStorage.getItem(KEY);
    } catch (err) {
      return null; // storage disabled: the page stays read-only
    }
  }

  function showAccess() {
    // CSS hides [data-action] while body[data-access="read-only"].
    body.dataset.access = !required || token() ? "act" : "read-only";
  }

  function say(text, bad) {
    if (!notice) return;
    notice.textContent = text;
    notice.dataset.bad = bad ? "1" : "0";
    notice.hidden = false;
  }

  async function call(path, payload) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (required) headers.Authorization = "Bearer " + token();
    const res = await fetch(path, { method: "POST", headers: headers, body: JSON.stringify(payload || {}) });
    let data = {};
    try {
      data = await res.json();
    } catch (err) {
      // not JSON: keep the status only
    }
    if (res.status === 401 && required) {
      localStorage.removeItem(KEY);
      showAccess();
      throw new Error("the API token was refused; enter it again");
    }
    if (!res.ok) throw new Error(data.message || "the server answered " + res.status);
    return data;
  }

  const ACTIONS = {
    trigger: async function (button) {
      const data = await call("/api/web", { dag_id: button.dataset.dag });
      say("Run #" + data.run_id + " started.");
      location.href = "/runs/" + data.run_id;
    },
    cancel: async function (button) {
      await call("/api/runs/" + button.dataset.run + "/cancel");
      say("Cancelling run #" + button.dataset.run + "…");
    },
    rerun: async function (button) {
      const data = await call("/api/runs/" + button.dataset.run + "/rerun");
      say("Run #" + data.run_id + " runs again from its failure.");
    },
  };

  document.addEventListener("click", async function (e) {
    const button = e.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    button.disabled = true;
    try {
      await ACTIONS[button.dataset.action](button);
    } catch (err) {
      say(String(err.message || err), true);
    } finally {
      button.disabled = false;
    }
  });

  const ask = document.querySelector("[data-token-ask]");
  const form = document.querySelector("[data-token-form]");
  const forget = document.querySelector("[data-token-forget]");
  if (ask && form) {
    ask.addEventListener("click", function () {
      form.hidden = false;
      form.elements.token.focus();
    });
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      const given = form.elements.token.value.trim();
      // Check it once against a read-only route before keeping it.
      const res = await fetch("/api/dags", { headers: { Authorization: "Bearer " + given } });
      if (!res.ok) {
        say("That token was refused.", true);
        return;
      }
      localStorage.setItem(KEY, given);
      form.reset();
      form.hidden = true;
      say("Token saved in this browser.");
      showAccess();
    });
  }
  if (forget) {
    forget.addEventListener("click", function () {
      localStorage.removeItem(KEY);
      say("Token forgotten; the page is read-only.");
      showAccess();
    });
  }
  showAccess();
})();
