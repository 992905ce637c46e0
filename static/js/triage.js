// Live clocks for the dashboard and incident pages: countdowns to the next
// escalation and incident ages, updated every second. No inline scripts, so
// the Content-Security-Policy can forbid them.
(function () {
  "use strict";

  function span(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h >= 24) return Math.floor(h / 24) + "d " + (h % 24) + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + (r < 10 ? "0" : "") + r + "s";
    return r + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("datetime")) - now) / 1000;
      el.textContent = left > 0 ? "in " + span(left) : "due now";
      el.classList.toggle("due", left <= 0);
    });
    document.querySelectorAll("time[data-age]").forEach(function (el) {
      el.textContent = span((now - Date.parse(el.getAttribute("datetime"))) / 1000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSwap", tick);
  });
})();
