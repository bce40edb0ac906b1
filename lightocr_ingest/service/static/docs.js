// The API docs page: Swagger UI from the package, reading this service's openapi.json. A file of
// its own, not an inline script, so the page's Content-Security-Policy can refuse inline code.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
