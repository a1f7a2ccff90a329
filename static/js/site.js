/* ParkSpot: small enhancements on top of server-rendered pages (all optional). */
(function () {
  "use strict";

  // --- The page's language (<html lang>, set by the server): French or English.
  var FRENCH_PAGE = (document.documentElement.lang || "").indexOf("fr") === 0;
  var FRENCH = {
    "About two minutes left to pay.": "Il reste environ deux minutes pour payer.",
    "The hold on your spot has run out.": "Le délai de réservation de votre place est écoulé.",
    "This browser cannot share your location here. Type an address or a city instead.":
      "Ce navigateur ne peut pas partager votre position ici. Saisissez plutôt une adresse ou une ville.",
    "Finding your location…": "Recherche de votre position…",
    "Looking for car parks near you…": "Recherche des parkings autour de vous…",
    "You did not let ParkSpot see your location. Type an address or a city instead.":
      "Vous n’avez pas autorisé ParkSpot à voir votre position. Saisissez plutôt une adresse ou une ville.",
    "Your location could not be found. Type an address or a city instead.":
      "Votre position n’a pas pu être trouvée. Saisissez plutôt une adresse ou une ville.",
  };
  function t(english) {
    return (FRENCH_PAGE && FRENCH[english]) || english;
  }

  // --- Countdowns: [data-countdown data-seconds-left="900"] with a [data-countdown-value].
  // Seconds come from the server, so a wrong clock on the phone does not matter.
  function format(seconds) {
    var s = Math.max(0, Math.ceil(seconds));
    var m = Math.floor(s / 60);
    var rest = s % 60;
    return m + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function startCountdown(el) {
    var total = parseInt(el.getAttribute("data-seconds-left"), 10);
    if (isNaN(total)) return;
    var out = el.querySelector("[data-countdown-value]");
    var announcer = el.querySelector("[data-countdown-announce]");
    var started = performance.now();
    var warned = total <= 120;
    function tick() {
      var left = total - (performance.now() - started) / 1000;
      if (out) out.textContent = format(left);
      if (!warned && left <= 120) {
        warned = true;
        if (announcer) announcer.textContent = t("About two minutes left to pay.");
      }
      if (left <= 0) {
        el.classList.add("is-over");
        if (announcer) announcer.textContent = t("The hold on your spot has run out.");
        el.dispatchEvent(new CustomEvent("countdown:end", { bubbles: true }));
        return;
      }
      window.setTimeout(tick, 250);
    }
    tick();
  }

  // --- After a live update (htmx), mark inputs whose error list is now filled.
  function syncInvalid(root) {
    (root || document).querySelectorAll("[data-errors-for]").forEach(function (box) {
      var input = document.getElementById(box.getAttribute("data-errors-for"));
      if (!input) return;
      if (box.textContent.trim()) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    });
  }

  // --- The search form suggests the next two hours: at the chosen city's clock, or,
  // for all cities, at the driver's own. It stops once the driver edits a time.
  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function wallClock(date, zone) {
    // The date as its wall clock in `zone` (IANA), as numbers.
    var parts = {};
    new Intl.DateTimeFormat("en-CA", {
      timeZone: zone || undefined, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(date).forEach(function (part) { parts[part.type] = part.value; });
    return { y: +parts.year, m: +parts.month, d: +parts.day, h: +parts.hour };
  }
  function inputValue(clock, plusHours) {
    // Whole hours on a wall clock (UTC arithmetic on purpose: no zone shifts here).
    var t = new Date(Date.UTC(clock.y, clock.m - 1, clock.d, clock.h + plusHours));
    return t.getUTCFullYear() + "-" + pad(t.getUTCMonth() + 1) + "-" + pad(t.getUTCDate()) +
      "T" + pad(t.getUTCHours()) + ":00";
  }
  function suggestTimes(form) {
    var start = form.querySelector("input[name=start]");
    var end = form.querySelector("input[name=end]");
    var city = form.querySelector("select[name=city]");
    if (!start || !end) return;
    var zones = {};
    try { zones = JSON.parse(form.getAttribute("data-zones") || "{}"); } catch (e) { zones = {}; }
    var edited = false;
    [start, end].forEach(function (input) {
      input.addEventListener("input", function () { edited = true; });
    });
    function suggest() {
      if (edited) return;
      var clock = wallClock(new Date(), city && zones[city.value]);
      start.value = inputValue(clock, 1);
      end.value = inputValue(clock, 3);
      [start, end].forEach(function (input) { input.dispatchEvent(new Event("readback")); });
    }
    if (city) city.addEventListener("change", suggest);
    suggest();
  }

  // --- Time inputs show the browser's own format ("12/01/2026, 06:00 AM"); beside
  // each, a [data-readback-for] says it as the site writes it (Tue 1 Dec
  // 2026, 06:00), so what is typed and what the site says can be compared.
  // In French as parking/templatetags/parkspot.py writes it (mar. 1 déc. 2026, 06:00).
  var DAYS = FRENCH_PAGE
    ? ["dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."]
    : ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  var MONTHS = FRENCH_PAGE
    ? ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."]
    : ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function siteTime(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
    if (!m) return "";
    var day = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])); // a calendar date, no zone
    return DAYS[day.getUTCDay()] + " " + (+m[3]) + " " + MONTHS[+m[2] - 1] + " " + m[1] +
      ", " + m[4] + ":" + m[5];
  }
  function readBack(output) {
    var input = document.getElementById(output.getAttribute("data-readback-for"));
    if (!input) return;
    function update() { output.textContent = siteTime(input.value); }
    input.addEventListener("input", update);
    input.addEventListener("change", update);
    input.addEventListener("readback", update);
    update();
  }

  // --- <details data-open-wide>: folded on a phone, open on a wide screen.
  function openWide(details) {
    if (window.matchMedia("(min-width: 48rem)").matches) details.open = true;
  }

  // --- "Near me": the browser's position fills the form's hidden `near` field and the
  // search runs. Refused or unavailable, the driver is told so and the address search
  // stays where it was (the button is hidden without this script).
  function nearMe(form) {
    var button = form.querySelector("[data-near-me]");
    var status = form.querySelector("[data-near-me-status]");
    var near = form.querySelector("input[name=near]");
    var place = form.querySelector("input[name=q]");
    if (!button || !near) return;
    button.hidden = false;
    if (place) {
      // An address typed replaces a position found before.
      place.addEventListener("input", function () { near.value = ""; });
    }
    function say(text) {
      if (status) status.textContent = text;
    }
    function giveUp(text) {
      button.disabled = false;
      near.value = "";
      say(text);
      if (place) place.focus();
    }
    button.addEventListener("click", function () {
      if (!("geolocation" in navigator) || window.isSecureContext === false) {
        giveUp(t("This browser cannot share your location here. Type an address or a city instead."));
        return;
      }
      button.disabled = true;
      say(t("Finding your location…"));
      navigator.geolocation.getCurrentPosition(
        function (position) {
          near.value = position.coords.latitude.toFixed(5) + "," + position.coords.longitude.toFixed(5);
          var city = form.querySelector("select[name=city]");
          if (city) city.value = "";
          if (place) place.value = "";
          say(t("Looking for car parks near you…"));
          if (form.requestSubmit) form.requestSubmit(); else form.submit();
        },
        function (error) {
          giveUp(t(error && error.code === 1
            ? "You did not let ParkSpot see your location. Type an address or a city instead."
            : "Your location could not be found. Type an address or a city instead."));
        },
        { enableHighAccuracy: false, timeout: 10000, maximumAge: 300000 }
      );
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("details[data-open-wide]").forEach(openWide);
    document.querySelectorAll("[data-readback-for]").forEach(readBack);
    document.querySelectorAll("form[data-suggest-times]").forEach(suggestTimes);
    document.querySelectorAll("form.search-form").forEach(nearMe);
    document.querySelectorAll("[data-countdown]").forEach(startCountdown);
  });
  document.addEventListener("htmx:afterSettle", function () {
    syncInvalid(document);
  });
})();
