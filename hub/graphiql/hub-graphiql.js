// Starts GraphiQL for the hub. The bearer token is read from the page's field at each request and never stored;
// GraphiQL's own storage (tabs, queries, headers) lives in memory, so nothing is left in localStorage.
(function () {
  "use strict";

  function memoryStorage() {
    var items = {};
    return {
      getItem: function (key) { return Object.prototype.hasOwnProperty.call(items, key) ? items[key] : null; },
      setItem: function (key, value) { items[key] = String(value); },
      removeItem: function (key) { delete items[key]; },
      clear: function () { items = {}; },
      get length() { return Object.keys(items).length; },
    };
  }

  function start() {
    var endpoint = document.body.dataset.endpoint;
    var token = document.getElementById("token");
    var fetcher = GraphiQL.createFetcher({
      url: endpoint,
      fetch: function (url, init) {
        var headers = new Headers((init && init.headers) || {});
        if (token.value.trim()) {
          headers.set("Authorization", "Bearer " + token.value.trim());
        }
        return window.fetch(url, Object.assign({}, init, { headers: headers }));
      },
    });
    var root = document.getElementById("graphiql");
    root.textContent = "";
    ReactDOM.render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        storage: memoryStorage(),
        shouldPersistHeaders: false,
        defaultQuery: "# Paste a token above, then run:\n{\n  viewer {\n    partner { name kind }\n    scopes\n  }\n}\n",
      }),
      root
    );
  }

  document.addEventListener("DOMContentLoaded", start);
})();
