// The benchmark's database: mixed types in the proportions of a typical OLTP schema (customers,
// orders with jsonb line items, an event log, documents with small bytea thumbnails), generated
// inside PostgreSQL so that a 1 GB dump takes about a minute, not an hour of client round trips.
// Text is drawn from a word list and values from skewed ranges, so the plain dump compresses
// about 3-4x with gzip -6 like real data does (pgbench's filler is all blanks: ~30x).
import pg from 'pg';
import type { PostgresCluster } from '../test/harness/index.js';

const WORDS = `the of and to in is that for it as was with be by on not he this are or his from at which but have an they
you were her she there one all we can has its more will would their so if about when what up out them time some into only
other new could these then two may first any like now my such make over our even most made after also did many before must
through back years where much your way well down should because each just those people how too little state good very world
still own see men work long here get both between life being under never day same another know while last might us great old
year off come since against go came right used take three states himself few house use during without again place around
however home small found thought went say part once general high upon school every order does account invoice shipment
customer payment refund warehouse delivery pending review approved supplier quantity discount product catalogue region
network server backup restore database replica cluster storage report summary quarter budget contract renewal ticket`.split(/\s+/);

const FIRST = 'Anna Ben Clara David Emma Felix Greta Hugo Ida Jonas Karin Lukas Mia Noah Olga Paul Quinn Rosa Sven Tara Uwe Vera Wim Xenia Yusuf Zoe'.split(' ');
const LAST = 'Schmidt Miller Garcia Rossi Nowak Dubois Jensen Kowalski Silva Novak Smith Brown Fischer Weber Meyer Wagner Becker Hoffmann Schulz Koch'.split(' ');
const COUNTRIES = 'DE FR NL PL IT ES AT CH BE DK SE US GB CZ PT'.split(' ');

const sqlArray = (items: readonly string[]) => `ARRAY[${items.map((w) => `'${w.replace(/'/g, "''")}'`).join(',')}]`;

/** Schema and helper functions; the helpers are dropped again once the data exists. */
const SCHEMA = `
CREATE FUNCTION bench_words(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg((${sqlArray(WORDS)})[1 + floor(random() * ${WORDS.length})::int], ' ') FROM generate_series(1, n)
$$;
CREATE FUNCTION bench_pick(a text[]) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT a[1 + floor(random() * array_length(a, 1))::int]
$$;
CREATE TABLE customers (
  id bigint PRIMARY KEY, public_id uuid NOT NULL, name text NOT NULL, email text NOT NULL, country char(2) NOT NULL,
  created_at timestamptz NOT NULL, balance numeric(14, 2) NOT NULL, profile jsonb NOT NULL
);
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL, placed_at timestamptz NOT NULL, status text NOT NULL,
  total numeric(12, 2) NOT NULL, currency char(3) NOT NULL, items jsonb NOT NULL, shipping_address text, note text
);
CREATE TABLE events (
  id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, session_id uuid NOT NULL, kind text NOT NULL, payload jsonb NOT NULL
);
CREATE TABLE documents (
  id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL, thumbnail bytea, updated_at timestamptz NOT NULL
);
`;

/** Rows per table for one "unit" of data; a unit's plain dump is calibrated at run time. */
const PER_UNIT = { customers: 10, orders: 30, events: 60, documents: 3 } as const;

function insertSql(table: keyof typeof PER_UNIT, from: number, to: number): string {
  const fn = sqlArray(FIRST);
  const ln = sqlArray(LAST);
  const countries = sqlArray(COUNTRIES);
  switch (table) {
    case 'customers':
      return `INSERT INTO customers
        SELECT g, gen_random_uuid(), f || ' ' || l, lower(f) || '.' || lower(l) || g || '@example.com', bench_pick(${countries}),
          timestamptz '2018-01-01' + random() * interval '2500 days', round((random() * 20000 - 2000)::numeric, 2),
          jsonb_build_object('newsletter', random() < 0.3, 'language', bench_pick(ARRAY['de','en','fr','nl','pl']),
            'tags', jsonb_build_array(bench_pick(${sqlArray(WORDS.slice(-30))}), bench_pick(${sqlArray(WORDS.slice(-30))})),
            'notes', bench_words(3 + (random() * 8)::int))
        FROM (SELECT g, bench_pick(${fn}) AS f, bench_pick(${ln}) AS l FROM generate_series(${from}, ${to}) g) s`;
    case 'orders':
      return `INSERT INTO orders
        SELECT g, 1 + (random() * ${to / 3})::bigint, timestamptz '2020-01-01' + random() * interval '1800 days',
          bench_pick(ARRAY['pending','paid','shipped','delivered','cancelled','refunded']),
          round((random() * 900 + 5)::numeric, 2), bench_pick(ARRAY['EUR','EUR','EUR','USD','GBP','PLN']),
          (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || lpad((random() * 5000)::int::text, 5, '0'), 'qty', 1 + (random() * 4)::int,
             'price', round((random() * 200 + 1)::numeric, 2), 'name', bench_words(2))) FROM generate_series(1, 1 + (g % 4))),
          (10 + (random() * 200)::int) || ' ' || bench_pick(${ln}) || 'straße, ' || lpad((random() * 99999)::int::text, 5, '0') || ' ' || bench_pick(${sqlArray(['Berlin', 'Hamburg', 'München', 'Köln', 'Wien', 'Zürich', 'Paris', 'Lyon', 'Kraków', 'Milano'])}),
          CASE WHEN random() < 0.4 THEN bench_words(4 + (random() * 12)::int) END
        FROM generate_series(${from}, ${to}) g`;
    case 'events':
      return `INSERT INTO events
        SELECT g, timestamptz '2024-01-01' + g * interval '37 ms' + random() * interval '1 s', gen_random_uuid(),
          bench_pick(ARRAY['page_view','click','login','logout','search','add_to_cart','checkout','error']),
          jsonb_build_object('path', '/' || bench_pick(${sqlArray(WORDS.slice(0, 60))}) || '/' || (random() * 1000)::int,
            'ua', bench_pick(ARRAY['Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0','Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15','Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0']),
            'ms', (random() * 900)::int, 'ok', random() < 0.97, 'ip', '10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int)
        FROM generate_series(${from}, ${to}) g`;
    case 'documents':
      return `INSERT INTO documents
        SELECT g, initcap(bench_words(3 + (random() * 5)::int)), bench_words(120 + (random() * 300)::int),
          CASE WHEN g % 4 = 0 THEN decode(repeat(md5(g::text) || md5((g * 7)::text), 1 + (g % 8)), 'hex') END,
          timestamptz '2022-01-01' + random() * interval '1000 days'
        FROM generate_series(${from}, ${to}) g`;
  }
}

export interface GenerateProgress {
  (done: number, total: number): void;
}

/** Creates `db` with `units` units of data (see PER_UNIT); indexes are built after the load. */
export async function generateDatabase(cluster: PostgresCluster, db: string, units: number, progress?: GenerateProgress): Promise<void> {
  await cluster.dropDatabase(db);
  await cluster.createDatabase(db);
  const client = new pg.Client(cluster.connectionConfig(db));
  await client.connect();
  try {
    await client.query(SCHEMA);
    const batchUnits = 2_000;
    const tables = Object.keys(PER_UNIT) as (keyof typeof PER_UNIT)[];
    for (let start = 0; start < units; start += batchUnits) {
      const end = Math.min(units, start + batchUnits);
      for (const table of tables) {
        const per = PER_UNIT[table];
        await client.query(insertSql(table, start * per + 1, end * per));
      }
      progress?.(end, units);
    }
    await client.query(`
      CREATE INDEX orders_customer_idx ON orders (customer_id);
      CREATE INDEX events_occurred_idx ON events (occurred_at);
      CREATE UNIQUE INDEX customers_email_idx ON customers (email);
      DROP FUNCTION bench_words(int); DROP FUNCTION bench_pick(text[]);`);
    // Not in the statement above: several statements in one query run as one transaction.
    await client.query('VACUUM ANALYZE');
  } finally {
    await client.end();
  }
}

/**
 * Creates `db` as a copy of `from` plus `copies` archive copies of its tables: a data set
 * (copies + 1) times as large, made at file-copy speed instead of generation speed.
 */
export async function extendByCopies(cluster: PostgresCluster, from: string, db: string, copies: number): Promise<void> {
  await cluster.dropDatabase(db);
  await cluster.query(`CREATE DATABASE ${pg.escapeIdentifier(db)} TEMPLATE ${pg.escapeIdentifier(from)}`);
  const client = new pg.Client(cluster.connectionConfig(db));
  await client.connect();
  try {
    for (let i = 1; i <= copies; i++) {
      for (const table of Object.keys(PER_UNIT)) await client.query(`CREATE TABLE archive${i}_${table} AS TABLE ${table}`);
    }
    await client.query('VACUUM ANALYZE');
  } finally {
    await client.end();
  }
}
