// Starts Swagger UI on this API's own document. A file of its own, not an inline script, so the
// page runs under `script-src 'self'`. Relative URLs keep it working behind a path prefix.
(function () {
  "use strict";
  var base = new URL(".", window.location.href);
  window.ui = SwaggerUIBundle({
    url: new URL("v1/openapi.json", base).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // "Try it out" keeps the token across reloads of this page (localStorage of this origin only).
    persistAuthorization: true,
    displayRequestDuration: true,
    tryItOutEnabled: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();
