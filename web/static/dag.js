// The DAG page: a box of the graph opens that task in the DAG's last run.
(function () {
  "use strict";

  const root = document.getElementById("dag");
  if (!root) return;
  document.addEventListener("taskflow:open-task", function (e) {
    if (root.dataset.lastRun) location.href = "/runs/" + root.dataset.lastRun + "#task-" + encodeURIComponent(e.detail.taskId);
  });
})();
