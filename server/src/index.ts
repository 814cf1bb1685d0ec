export { startService, main, type Service } from './main.js';
export { loadConfig, ConfigError, type Config } from './config/config.js';
export { buildOpenApiDocument } from './http/openapi-document.js';
export { SERVICE_VERSION } from './version.js';
