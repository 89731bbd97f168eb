// Starts the self-hosted Swagger UI on /docs (a file of our own: the page's CSP allows no
// inline script and no other origin).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
