/** Variables whose values are never echoed back, and which also accept `<NAME>_FILE`. */
export const SECRET_VARIABLES = ['DB_PASSWORD', 'API_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'RESTORE_DRILL_DB_PASSWORD'] as const;
