/* Firefly dashboard: refreshes the live regions while the tab is visible.

   Each region reloads itself on an "ff:refresh" event (hx-trigger="ff:refresh from:body"),
   which this script dispatches on <body> at the interval picked in the "Refresh" switch
   (#ff-poll-interval; its default is FIREFLY_ADMIN_POLL_INTERVAL), remembered in this browser.
   Being a static file, with htmx set to never eval, the page works under a
   Content-Security-Policy of "script-src 'self'". */
(function () {
  "use strict";

  const STORAGE_KEY = "firefly_admin.poll_interval";
  const select = document.getElementById("ff-poll-interval");
  if (!select) {
    return;
  }
  let timer = null;
  let pressed = false; // a pointer is held down inside a live region

  function remembered() {
    try {
      return window.localStorage.getItem(STORAGE_KEY);
    } catch (error) {
      return null; // storage is off: the page's default applies
    }
  }

  function remember(value) {
    try {
      if (value === null) {
        window.localStorage.removeItem(STORAGE_KEY);
      } else {
        window.localStorage.setItem(STORAGE_KEY, value);
      }
    } catch (error) {
      // storage is off: the choice lasts as long as the page
    }
  }

  function interval() {
    return parseInt(select.value, 10) || 0;
  }

  function refresh() {
    if (document.visibilityState === "visible") {
      document.body.dispatchEvent(new CustomEvent("ff:refresh"));
    }
  }

  function restart() {
    window.clearInterval(timer);
    timer = null;
    if (interval() > 0 && document.visibilityState === "visible") {
      timer = window.setInterval(refresh, interval());
    }
  }

  const choice = remembered();
  if (choice !== null && Array.from(select.options).some((option) => option.value === choice)) {
    select.value = choice;
  }

  select.addEventListener("change", function () {
    // Picking the default forgets the choice, so that a new default applies.
    const option = select.options[select.selectedIndex];
    remember(option.hasAttribute("data-default") ? null : select.value);
    if (interval() > 0) {
      refresh();
    }
    restart();
  });

  document.addEventListener("visibilitychange", function () {
    if (interval() > 0) {
      refresh(); // back on the tab: catch up at once (no-op when hidden)
    }
    restart();
  });

  // A refresh landing between pressing and releasing a button of a region would replace the
  // button and lose the click: such a refresh is dropped, the next one brings the news.
  document.addEventListener("pointerdown", function (event) {
    pressed = Boolean(event.target.closest && event.target.closest(".ff-live"));
  });
  for (const name of ["pointerup", "pointercancel"]) {
    document.addEventListener(name, function () {
      pressed = false;
    });
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (pressed && event.detail.target.classList.contains("ff-live")) {
      event.detail.shouldSwap = false;
    }
  });

  select.closest(".ff-poll").hidden = false;
  restart();
})();
