/** The options that name a store, shared by the backup commands and by ls and cat (which also read backups). */
export const STORE_OPTIONS = {
  store: { type: 'string' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  'request-timeout': { type: 'string' },
} as const;

export interface StoreValues {
  store?: string;
  endpoint?: string;
  region?: string;
  'request-timeout'?: string;
}
