/**
 * The secrets of the service's environment (the service and db-restore read the same variables):
 * never echoed back, each also accepted as `<NAME>_FILE`, and never inherited by a child process.
 */
export const SECRET_VARIABLES = ['DB_PASSWORD', 'API_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'RESTORE_DRILL_DB_PASSWORD'] as const;
