/*
 * ShopSuggestions: the search box typeahead of django-shop-suggestions.
 *
 * Plain JavaScript, no dependencies, no build step. It turns any <input> into
 * an ARIA 1.2 combobox that lists completions from the app's `suggest/`
 * endpoint and reports impressions and clicks to `events/`.
 *
 *   ShopSuggestions.attach(input, {endpoint: "/api/suggestions/suggest/"});
 *   <input name="q" data-shop-suggestions data-limit="8">   (attached on load)
 *
 * Options are documented in docs/typeahead.md. Design rules:
 * - Suggestion text only ever reaches the page through text nodes: it comes
 *   from shoppers' searches, so it must never be parsed as HTML.
 * - The input must keep working as a plain search box whatever the API does:
 *   every failure closes the list quietly.
 */
(function (window, document) {
  "use strict";

  var DEFAULTS = {
    endpoint: "/api/suggestions/suggest/",
    eventsEndpoint: "/api/suggestions/events/",
    limit: 8,
    debounceMs: 120,
    minChars: 1,
    timeoutMs: 2000,
    labels: {
      recent: "Your recent searches",
      suggestions: "Suggestions",
      listbox: "Search suggestions",
    },
    submitOnSelect: true,
    // Beacons cannot carry the CSRF header that DRF requires of signed-in
    // users; the template tag turns this off for them (fetch keepalive is used).
    useBeacon: true,
    originField: "origin",
    csrfCookieName: "csrftoken",
    container: null,
    onSelect: null,
  };
  var MAX_EVENTS_PER_POST = 20; // below the server's default of 50 per batch
  var FLUSH_DELAY_MS = 1500; // impressions while typing go out in one post
  var uid = 0;

  // -- events ----------------------------------------------------------------

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var pair = parts[i].trim();
      if (pair.indexOf(name + "=") === 0) return decodeURIComponent(pair.slice(name.length + 1));
    }
    return "";
  }

  /**
   * POST events to `endpoint`. With `beacon`, the browser delivers them even if
   * the page is being left (navigator.sendBeacon); otherwise, or when the
   * beacon is refused, a keepalive fetch carries them with the CSRF header.
   * Never throws and never rejects: analytics must not break the shop.
   */
  function sendEvents(endpoint, events, options) {
    options = options || {};
    for (var start = 0; start < events.length; start += MAX_EVENTS_PER_POST) {
      var body = JSON.stringify({ events: events.slice(start, start + MAX_EVENTS_PER_POST) });
      if (options.beacon && navigator.sendBeacon) {
        try {
          if (navigator.sendBeacon(endpoint, new Blob([body], { type: "application/json" }))) continue;
        } catch (e) {
          /* fall through to fetch */
        }
      }
      try {
        var headers = { "Content-Type": "application/json" };
        var token = options.csrfToken || readCookie(options.csrfCookieName || "csrftoken");
        if (token) headers["X-CSRFToken"] = token;
        window
          .fetch(endpoint, { method: "POST", body: body, headers: headers, keepalive: true, credentials: "same-origin" })
          .catch(function () {});
      } catch (e) {
        /* no fetch: nothing to report with */
      }
    }
  }

  // -- helpers ---------------------------------------------------------------

  /** Length of the start of `text` that matches what was typed, ignoring case
   *  and runs of spaces (the API normalises both), so it can be highlighted. */
  function matchedLength(text, typed) {
    var t = typed.replace(/^\s+/, "").replace(/\s+/g, " ").toLowerCase();
    var i = 0;
    var j = 0;
    while (i < text.length && j < t.length) {
      var c = text.charAt(i).toLowerCase();
      if (/\s/.test(c) && t.charAt(j) === " ") {
        while (i < text.length && /\s/.test(text.charAt(i))) i++;
        j++;
      } else if (c === t.charAt(j)) {
        i++;
        j++;
      } else {
        break;
      }
    }
    return i;
  }

  function el(tag, className, attrs) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    return node;
  }

  // -- the widget ------------------------------------------------------------

  function Typeahead(input, options) {
    var opts = {};
    for (var key in DEFAULTS) opts[key] = DEFAULTS[key];
    for (key in options || {}) if (options[key] !== undefined && options[key] !== null) opts[key] = options[key];
    opts.labels = Object.assign({}, DEFAULTS.labels, (options || {}).labels);
    this.opts = opts;
    this.input = input;
    this.form = input.form;
    this.id = "ss-" + ++uid;
    this.items = [];
    this.active = -1;
    this.shown = null; // {query, requestId} of the list on screen
    this.seq = 0; // numbers requests: only the newest one may render
    this.controller = null;
    this.timer = null;
    this.lastInputAt = -Infinity;
    this.reported = {}; // request ids whose impression was queued
    this.queue = [];
    this.flushTimer = null;
    this.choice = null; // a chosen suggestion waiting for the form submit
    this.build();
    this.bind();
  }

  Typeahead.prototype.build = function () {
    var input = this.input;
    var host = this.opts.container || input.parentNode;
    host.classList.add("ss-host"); // the list is positioned under it
    this.listbox = el("div", "ss-listbox", {
      id: this.id + "-listbox",
      role: "listbox",
      "aria-label": this.opts.labels.listbox,
    });
    this.listbox.hidden = true;
    // Screen readers hear how many suggestions arrived without losing focus.
    this.status = el("div", "ss-visually-hidden", { role: "status", "aria-live": "polite" });
    host.appendChild(this.listbox);
    host.appendChild(this.status);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", this.listbox.id);
    input.setAttribute("autocomplete", "off"); // the browser's own list would cover ours
    input.classList.add("ss-input");
  };

  Typeahead.prototype.bind = function () {
    var self = this;
    this.handlers = {
      input: function (e) {
        self.onInput(e);
      },
      keydown: function (e) {
        self.onKeyDown(e);
      },
      blur: function () {
        self.close();
      },
      focus: function () {
        // Coming back to the box shows the list it had, if still current.
        if (self.items.length && self.shown && self.shown.query === self.input.value) self.open();
      },
      submit: function () {
        self.onSubmit();
      },
      pagehide: function () {
        self.flush(true);
        self.close();
      },
      pageshow: function (e) {
        // Back from the results page (bfcache): the choice was submitted
        // already; submitting again is the shopper's own doing.
        if (!e.persisted) return;
        self.choice = null;
        self.setOrigin(null);
        self.close();
      },
    };
    this.input.addEventListener("input", this.handlers.input);
    this.input.addEventListener("keydown", this.handlers.keydown);
    this.input.addEventListener("blur", this.handlers.blur);
    this.input.addEventListener("focus", this.handlers.focus);
    if (this.form) this.form.addEventListener("submit", this.handlers.submit);
    window.addEventListener("pagehide", this.handlers.pagehide);
    window.addEventListener("pageshow", this.handlers.pageshow);
    // mousedown would move focus out of the input and close the list before
    // the click lands; cancelling it keeps the focus where it is.
    this.listbox.addEventListener("mousedown", function (e) {
      e.preventDefault();
    });
    // click covers mouse, touch and pen: taps that scroll the list don't click.
    this.listbox.addEventListener("click", function (e) {
      var option = e.target.closest ? e.target.closest("[role=option]") : null;
      if (option) self.choose(Number(option.getAttribute("data-index")));
    });
    this.listbox.addEventListener("mousemove", function (e) {
      var option = e.target.closest ? e.target.closest("[role=option]") : null;
      if (option) self.setActive(Number(option.getAttribute("data-index")), false);
    });
  };

  Typeahead.prototype.destroy = function () {
    this.cancel();
    this.input.removeEventListener("input", this.handlers.input);
    this.input.removeEventListener("keydown", this.handlers.keydown);
    this.input.removeEventListener("blur", this.handlers.blur);
    this.input.removeEventListener("focus", this.handlers.focus);
    if (this.form) this.form.removeEventListener("submit", this.handlers.submit);
    window.removeEventListener("pagehide", this.handlers.pagehide);
    window.removeEventListener("pageshow", this.handlers.pageshow);
    ["role", "aria-autocomplete", "aria-expanded", "aria-controls", "aria-activedescendant"].forEach(function (a) {
      this.input.removeAttribute(a);
    }, this);
    this.listbox.remove();
    this.status.remove();
    delete this.input.shopSuggestions;
  };

  Typeahead.prototype.emit = function (name, detail, cancelable) {
    var event = new CustomEvent("shop-suggestions:" + name, { bubbles: true, cancelable: !!cancelable, detail: detail });
    return this.input.dispatchEvent(event);
  };

  // -- fetching --------------------------------------------------------------

  Typeahead.prototype.onInput = function (event) {
    // Typing after choosing makes it the shopper's own query again.
    this.choice = null;
    this.setOrigin(null);
    var now = event && event.timeStamp ? event.timeStamp : performance.now();
    // Debounce with a leading edge: the first keystroke after a pause asks
    // at once, a burst of fast keystrokes asks once, debounceMs after the last.
    var idle = now - this.lastInputAt >= this.opts.debounceMs;
    this.lastInputAt = now;
    clearTimeout(this.timer);
    var self = this;
    if (idle) this.fetch(now);
    else
      this.timer = setTimeout(function () {
        self.fetch(now);
      }, this.opts.debounceMs);
  };

  Typeahead.prototype.cancel = function () {
    clearTimeout(this.timer);
    this.seq++; // whatever is in flight is now stale
    if (this.controller) this.controller.abort();
    this.controller = null;
  };

  Typeahead.prototype.fetch = function (startedAt) {
    this.cancel();
    var query = this.input.value;
    if (query.trim().length < this.opts.minChars) {
      this.close();
      return;
    }
    var seq = this.seq;
    var self = this;
    var url;
    try {
      url = new URL(this.opts.endpoint, document.baseURI);
      url.searchParams.set("q", query);
      url.searchParams.set("limit", String(this.opts.limit));
    } catch (e) {
      return this.fail(e, seq);
    }
    var controller = window.AbortController ? new AbortController() : null;
    this.controller = controller;
    var timeout = setTimeout(function () {
      if (controller) controller.abort(); // a slow API is treated like a down one
    }, this.opts.timeoutMs);
    var sentAt = performance.now();
    window
      .fetch(url.toString(), {
        headers: { Accept: "application/json" },
        credentials: "same-origin", // the shopper (or session) cookie brings recent searches
        signal: controller ? controller.signal : undefined,
      })
      .then(function (response) {
        if (!response.ok) throw new Error("suggest answered HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        clearTimeout(timeout);
        // Out of order: a newer request was started after this one.
        if (seq !== self.seq) return;
        if (!data || !Array.isArray(data.suggestions)) throw new Error("unexpected suggest answer");
        self.render(data, query, startedAt, performance.now() - sentAt);
      })
      .catch(function (error) {
        clearTimeout(timeout);
        self.fail(error, seq);
      });
  };

  Typeahead.prototype.fail = function (error, seq) {
    if (seq !== this.seq) return; // superseded (or aborted on purpose)
    this.close();
    this.emit("error", { error: error });
  };

  // -- rendering -------------------------------------------------------------

  Typeahead.prototype.render = function (data, query, startedAt, network) {
    var items = data.suggestions.filter(function (s) {
      return s && typeof s.text === "string" && s.text;
    });
    // Recent searches lead, then pinned and ranked ones, each in API order.
    var recent = items.filter(function (s) {
      return s.kind === "recent";
    });
    var others = items.filter(function (s) {
      return s.kind !== "recent";
    });
    this.items = recent.concat(others);
    this.active = -1;
    this.shown = { query: query, requestId: String(data.request_id || "") };
    this.listbox.textContent = "";
    if (recent.length) this.renderGroup("recent", this.opts.labels.recent, recent, 0, query);
    if (others.length) this.renderGroup("suggestions", this.opts.labels.suggestions, others, recent.length, query);
    var focused = document.activeElement === this.input;
    if (this.items.length && focused) {
      this.open();
      this.status.textContent =
        this.items.length + (this.items.length === 1 ? " suggestion" : " suggestions") + " available.";
      this.reportImpression();
    } else {
      this.close();
    }
    this.emit("rendered", {
      query: query,
      requestId: this.shown.requestId,
      count: focused ? this.items.length : 0,
      elapsed: performance.now() - startedAt, // keystroke to list on screen
      network: network, // request sent to answer parsed
      degraded: !!data.degraded,
    });
  };

  Typeahead.prototype.renderGroup = function (name, label, items, offset, query) {
    var labelId = this.id + "-group-" + name;
    var group = el("div", "ss-group ss-group--" + name, { role: "group", "aria-labelledby": labelId });
    var heading = el("div", "ss-group-label", { role: "presentation", id: labelId });
    heading.textContent = label;
    group.appendChild(heading);
    for (var i = 0; i < items.length; i++) {
      var index = offset + i;
      var item = items[i];
      var option = el("div", "ss-option ss-option--" + (item.kind === "recent" ? "recent" : "suggestion"), {
        role: "option",
        id: this.id + "-option-" + index,
        "aria-selected": "false",
        "data-index": String(index),
        "data-kind": String(item.kind),
      });
      if (item.fuzzy) option.classList.add("ss-option--fuzzy");
      option.appendChild(el("span", "ss-icon", { "aria-hidden": "true" }));
      var text = el("span", "ss-text");
      var n = matchedLength(item.text, query);
      if (n > 0) {
        var mark = el("mark", "ss-match");
        mark.appendChild(document.createTextNode(item.text.slice(0, n)));
        text.appendChild(mark);
      }
      text.appendChild(document.createTextNode(item.text.slice(n)));
      option.appendChild(text);
      group.appendChild(option);
    }
    this.listbox.appendChild(group);
  };

  Typeahead.prototype.open = function () {
    this.listbox.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
  };

  Typeahead.prototype.isOpen = function () {
    return !this.listbox.hidden;
  };

  Typeahead.prototype.close = function () {
    this.setActive(-1, false);
    this.listbox.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
  };

  Typeahead.prototype.setActive = function (index, scroll) {
    var options = this.listbox.querySelectorAll("[role=option]");
    for (var i = 0; i < options.length; i++) options[i].setAttribute("aria-selected", String(i === index));
    this.active = index >= 0 && index < options.length ? index : -1;
    if (this.active < 0) {
      this.input.removeAttribute("aria-activedescendant");
      return;
    }
    this.input.setAttribute("aria-activedescendant", options[this.active].id);
    if (scroll && options[this.active].scrollIntoView) options[this.active].scrollIntoView({ block: "nearest" });
  };

  // -- keyboard --------------------------------------------------------------

  Typeahead.prototype.onKeyDown = function (e) {
    if (e.isComposing || e.keyCode === 229) return; // an IME is composing text
    var open = this.isOpen();
    var count = this.items.length;
    switch (e.key) {
      case "ArrowDown":
      case "ArrowUp":
        e.preventDefault(); // keep the caret where it is
        if (!open) {
          // Reopen the last list if it still matches the input, else ask.
          if (count && this.shown && this.shown.query === this.input.value) this.open();
          else this.fetch(performance.now());
          return;
        }
        var step = e.key === "ArrowDown" ? 1 : -1;
        // -1 is "no option": the cycle passes through the typed text.
        var next = this.active + step;
        if (next >= count) next = -1;
        else if (next < -1) next = count - 1;
        this.setActive(next, true);
        return;
      case "Enter":
        if (open && this.active >= 0) {
          e.preventDefault();
          this.choose(this.active);
        } else {
          // The browser submits the typed text; no late list may reopen.
          this.cancel();
          this.close();
        }
        return;
      case "Escape":
        if (open) {
          e.preventDefault();
          this.cancel();
          this.close();
        } else if (this.input.value) {
          e.preventDefault();
          this.input.value = "";
          this.choice = null;
          this.setOrigin(null);
        }
        return;
      case "Tab":
        // Accept the active suggestion into the input; focus moves on as usual.
        if (open && this.active >= 0) this.accept(this.active);
        this.close();
        return;
    }
  };

  // -- choosing and reporting ------------------------------------------------

  Typeahead.prototype.setOrigin = function (value) {
    if (!this.form || !this.opts.originField) return;
    var field = this.form.querySelector("input[data-ss-origin]");
    if (!value) {
      if (field) field.remove();
      return;
    }
    if (!field) {
      field = el("input", "", { type: "hidden", name: this.opts.originField, "data-ss-origin": "" });
      this.form.appendChild(field);
    }
    field.value = value;
  };

  /** Put a suggestion into the input and remember it: the click is reported
   *  when the form is submitted with it (or at once without a form). */
  Typeahead.prototype.accept = function (index) {
    var item = this.items[index];
    if (!item || !this.shown) return null;
    this.cancel();
    this.input.value = item.text;
    this.choice = {
      item: item,
      position: index,
      requestId: this.shown.requestId,
      query: this.shown.query,
    };
    // Recent searches are "history", the rest "suggestion": search history
    // records how each search started.
    this.setOrigin(item.kind === "recent" ? "history" : "suggestion");
    return this.choice;
  };

  Typeahead.prototype.choose = function (index) {
    var choice = this.accept(index);
    if (!choice) return;
    this.close();
    var detail = { text: choice.item.text, kind: choice.item.kind, position: choice.position, requestId: choice.requestId, query: choice.query };
    var proceed = this.emit("select", detail, true);
    if (typeof this.opts.onSelect === "function") {
      try {
        if (this.opts.onSelect(detail, this.input) === false) proceed = false;
      } catch (e) {
        window.setTimeout(function () {
          throw e; // the host's bug: reported, but the widget carries on
        });
      }
    }
    if (proceed && this.opts.submitOnSelect && this.form) {
      if (this.form.requestSubmit) {
        this.form.requestSubmit(); // runs the submit handlers (and ours)
      } else {
        this.onSubmit();
        this.form.submit();
      }
    } else {
      this.reportChoice(false);
    }
  };

  Typeahead.prototype.onSubmit = function () {
    this.cancel();
    this.close();
    this.reportChoice(true);
  };

  Typeahead.prototype.reportChoice = function (navigating) {
    var choice = this.choice;
    this.choice = null;
    if (choice && choice.item.text === this.input.value && choice.requestId) {
      this.queue.push({
        type: "suggestion_click",
        request_id: choice.requestId,
        prefix: choice.query,
        suggestion: choice.item.text,
        position: choice.position,
      });
    }
    this.flush(navigating);
  };

  Typeahead.prototype.reportImpression = function () {
    var shown = this.shown;
    if (!shown.requestId || this.reported[shown.requestId] || !shown.query.trim()) return;
    this.reported[shown.requestId] = true;
    this.queue.push({
      type: "impression",
      request_id: shown.requestId,
      prefix: shown.query,
      suggestions: this.items.map(function (s) {
        return s.text;
      }),
    });
    var self = this;
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(function () {
      self.flush(false);
    }, FLUSH_DELAY_MS);
  };

  Typeahead.prototype.flush = function (navigating) {
    clearTimeout(this.flushTimer);
    if (!this.queue.length || !this.opts.eventsEndpoint) return;
    var events = this.queue.splice(0, this.queue.length);
    sendEvents(this.opts.eventsEndpoint, events, {
      beacon: navigating && this.opts.useBeacon,
      csrfCookieName: this.opts.csrfCookieName,
    });
  };

  // -- public API ------------------------------------------------------------

  function attach(input, options) {
    if (input.shopSuggestions) return input.shopSuggestions;
    input.shopSuggestions = new Typeahead(input, options);
    return input.shopSuggestions;
  }

  /** Options from data- attributes: data-limit="5", data-label-recent="…" … */
  function optionsFromData(input) {
    var d = input.dataset;
    var number = function (v) {
      return v === undefined || v === "" || isNaN(Number(v)) ? undefined : Number(v);
    };
    var bool = function (v) {
      return v === undefined ? undefined : v !== "false" && v !== "0";
    };
    return {
      endpoint: d.endpoint,
      eventsEndpoint: d.eventsEndpoint,
      limit: number(d.limit),
      debounceMs: number(d.debounceMs),
      minChars: number(d.minChars),
      timeoutMs: number(d.timeoutMs),
      submitOnSelect: bool(d.submitOnSelect),
      useBeacon: bool(d.useBeacon),
      originField: d.originField,
      csrfCookieName: d.csrfCookieName,
      labels: { recent: d.labelRecent, suggestions: d.labelSuggestions, listbox: d.labelListbox },
    };
  }

  function autoAttach(root) {
    var inputs = (root || document).querySelectorAll("input[data-shop-suggestions]");
    for (var i = 0; i < inputs.length; i++) {
      var options = optionsFromData(inputs[i]);
      for (var name in options.labels) if (!options.labels[name]) delete options.labels[name];
      attach(inputs[i], options);
    }
  }

  // -- refinement chips ------------------------------------------------------

  /**
   * Reports the refinement chips (or rewrites) of a results page: one
   * `refinement_impression` when attached, a `refinement_click` when a chip is
   * chosen. `root` carries data-request-id, data-query and
   * data-events-endpoint (and data-use-beacon="false" for signed-in
   * shoppers); each chip is an `a[data-refinement]` with data-position. The
   * chips are plain links (searches with origin=refinement): without this
   * script they still work, and the search they start is recorded.
   */
  function trackRefinements(root) {
    if (!root || root.__ssRefinements) return;
    root.__ssRefinements = true;
    var endpoint = root.getAttribute("data-events-endpoint") || DEFAULTS.eventsEndpoint;
    var base = { request_id: root.getAttribute("data-request-id"), query: root.getAttribute("data-query") || "" };
    if (!endpoint || !base.request_id || !base.query) return;
    var beacon = root.getAttribute("data-use-beacon") !== "false";
    var chips = root.querySelectorAll("a[data-refinement]");
    var texts = [];
    for (var i = 0; i < chips.length; i++) texts.push(chips[i].getAttribute("data-refinement"));
    if (texts.length) {
      sendEvents(endpoint, [{ type: "refinement_impression", request_id: base.request_id, query: base.query,
                              refinements: texts }], { beacon: beacon });
    }
    function report(event) {
      var chip = event.target.closest && event.target.closest("a[data-refinement]");
      if (!chip || !root.contains(chip)) return;
      sendEvents(endpoint, [{ type: "refinement_click", request_id: base.request_id, query: base.query,
                              refinement: chip.getAttribute("data-refinement"),
                              position: Number(chip.getAttribute("data-position")) }], { beacon: beacon });
    }
    root.addEventListener("click", report);
    root.addEventListener("auxclick", function (event) {
      if (event.button === 1) report(event);
    });
  }

  function autoTrackRefinements(root) {
    var lists = (root || document).querySelectorAll("[data-shop-refinements]");
    for (var i = 0; i < lists.length; i++) trackRefinements(lists[i]);
  }

  window.ShopSuggestions = {
    attach: attach,
    autoAttach: autoAttach,
    sendEvents: sendEvents,
    trackRefinements: trackRefinements,
    defaults: DEFAULTS,
  };

  function start() {
    autoAttach();
    autoTrackRefinements();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(window, document);
