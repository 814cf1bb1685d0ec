export { startService, main, type Service } from './main.js';
export { loadConfig, ConfigError, type Config } from './config/config.js';
