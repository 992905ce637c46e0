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

  // Polling pauses while the tab is hidden: a hidden dashboard asks the
  // server nothing, and catches up the moment it is shown again. (Here, not
  // in an hx-trigger condition: htmx runs with allowEval off.)
  function pausePollsWhileHidden(event) {
    var trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    if (document.hidden && (!trigger || trigger.type !== "incidents-changed")) {
      event.preventDefault();
    }
  }

  function browserTimeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  // A signed-in person with no time zone yet: the page carries
  // data-time-zone-url, and their browser's zone is sent once (per tab
  // session, so a zone the server refuses is not sent on every page). The
  // page is not reloaded: someone who has started filtering or typing keeps
  // what they did. Its times stay labelled in the server's zone; the next
  // page, and the dashboard's next refresh, are in theirs.
  function sendTimeZone() {
    var url = document.body.getAttribute("data-time-zone-url");
    var zone = browserTimeZone();
    if (!url || !zone || window.sessionStorage.getItem("triage-time-zone-sent") === zone) return;
    window.sessionStorage.setItem("triage-time-zone-sent", zone);
    var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: headers,
      body: "time_zone=" + encodeURIComponent(zone)
    }).then(function (response) {
      return response.ok ? response.json() : { stored: false };
    }).then(function (answer) {
      if (answer.stored) document.body.removeAttribute("data-time-zone-url");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-browser-zone]").forEach(function (el) {
      el.textContent = browserTimeZone() || "unknown";
    });
    sendTimeZone();
    tick();
    window.setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSwap", tick);
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      if (event.detail.elt && event.detail.elt.id === "incident-list") {
        pausePollsWhileHidden(event);
      }
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && window.htmx && document.getElementById("incident-list")) {
        window.htmx.trigger(document.body, "incidents-changed");
      }
    });
  });
})();
