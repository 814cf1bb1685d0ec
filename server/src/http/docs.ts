/**
 * The interactive API page at /docs: Swagger UI from the `swagger-ui-dist` npm package, served
 * by us under /docs/assets (no CDN), rendering /openapi.json.
 */
export function renderDocsPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>db-backup-service API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>`;
}

/** Kept out of the page so a strict Content-Security-Policy (no inline scripts) can apply. */
export const DOCS_INIT_SCRIPT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n`;
