import { byId } from "./dom.js";
import { historyView } from "./history-view.js";
import { presenterView } from "./presenter-view.js";
import { senderView } from "./sender-view.js";

// The console talks to the node (or the load balancer) that served it.
const origin = window.location.origin;
byId("origin").textContent = origin;

for (const button of document.querySelectorAll<HTMLButtonElement>("nav button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b === button);
    for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.id === button.dataset.tab);
  });
}

presenterView(origin);
senderView(origin);
historyView(origin);
