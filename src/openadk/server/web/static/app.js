// openadk session browser: the little the pages do in the browser beyond htmx.
// No inline scripts anywhere (the Content-Security-Policy forbids them); this file is all.
(function () {
  "use strict";

  function relative(stamp, now) {
    var ago = now - stamp;
    if (ago < -1) return "in the future";
    if (ago < 2) return "just now";
    if (ago < 60) return Math.floor(ago) + " s ago";
    if (ago < 3600) return Math.floor(ago / 60) + " min ago";
    if (ago < 86400) return Math.floor(ago / 3600) + " h ago";
    if (ago < 30 * 86400) return Math.floor(ago / 86400) + " d ago";
    return null; // an exact date already: leave it
  }

  // Relative times ("5 min ago") go stale on a page kept open: refresh them.
  function refreshTimes() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time[data-ts]").forEach(function (el) {
      var text = relative(parseFloat(el.getAttribute("data-ts")), now);
      if (text !== null && el.textContent !== text) el.textContent = text;
    });
  }
  setInterval(refreshTimes, 15000);
  // Newly swapped-in events were rendered a moment ago: bring every time on the page up to date.
  document.addEventListener("htmx:afterSettle", refreshTimes);

  // A second click on "raw JSON" hides it again instead of loading it twice.
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest("a.rawlink");
    if (!link) return;
    var box = link.closest("article").querySelector(".raw");
    if (box && box.firstChild) {
      box.replaceChildren();
      ev.preventDefault();
      ev.stopImmediatePropagation();
    }
  }, true);
})();
