/*
 * Demo storefront behaviour (not part of the reusable app):
 * - reports clicks on search results as product_click events;
 * - swaps product images that fail to load for a placeholder;
 * - drops the one-time `origin` parameter from the address bar.
 * Needs suggestions/typeahead.js (window.ShopSuggestions) for sending events.
 */
(function () {
  "use strict";

  // A result click navigates away at once: the event goes out as a beacon,
  // which the browser delivers after the page is gone.
  function reportProductClick(event) {
    var link = event.target.closest && event.target.closest("a[data-product-id]");
    var grid = link && link.closest("[data-request-id]");
    if (!grid || !window.ShopSuggestions) return;
    window.ShopSuggestions.sendEvents(grid.getAttribute("data-events-endpoint"), [
      {
        type: "product_click",
        request_id: grid.getAttribute("data-request-id"),
        query: grid.getAttribute("data-query") || "",
        product_id: link.getAttribute("data-product-id"),
        position: Number(link.getAttribute("data-position")),
      },
    ], { beacon: grid.getAttribute("data-use-beacon") === "true" });
  }
  document.addEventListener("click", reportProductClick);
  // Middle-click opens a new tab: still a click on the result.
  document.addEventListener("auxclick", function (event) {
    if (event.button === 1) reportProductClick(event);
  });

  // Images fade in when they load; until then (and for good when they fail,
  // as Icecat URLs do offline) the card shows its CSS placeholder.
  function settle(img) {
    if (img.complete && img.naturalWidth > 0) img.classList.add("is-loaded");
    else if (img.complete) img.classList.add("is-broken");
  }
  document.addEventListener("load", function (e) {
    if (e.target.matches && e.target.matches("img[data-fallback]")) settle(e.target);
  }, true);
  document.addEventListener("error", function (e) {
    if (e.target.matches && e.target.matches("img[data-fallback]")) e.target.classList.add("is-broken");
  }, true);
  // Images that settled before this script ran.
  document.querySelectorAll("img[data-fallback]").forEach(settle);

  // `origin` records how one search started; a reload or a shared link of the
  // results page is not started from a suggestion again.
  var url = new URL(window.location.href);
  if (url.searchParams.has("origin")) {
    url.searchParams.delete("origin");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }
})();
