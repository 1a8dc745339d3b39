// `shops_by_city`: a bulkhost data set plugin written in JavaScript (componentize-js).
//
// Reads the tenant's `shops` collection through `documents`, keeps the shops whose address
// ends with the requested city, and streams them to the `sink` in batches. The host does not
// check parameters against the specs itself (the Rust SDK does it in the guest), so
// `validate`/`generate` here check kinds and allowed values and fill in defaults.
//
// How the contract looks from JavaScript:
// - the exported interface is an object named after it (`generator`), its functions camelCase;
// - records are objects with camelCase fields (`defaultValue`); enums are their case names as
//   strings (`'string'`, `'info'`); variants are `{ tag, val }`; `option<T>` is `undefined`
//   or the value;
// - `u64` is a BigInt (a document's `id` and `version`): `Number()` it before `JSON.stringify`;
// - an export answers `result::err(e)` by throwing `e` itself (a `{ tag, val }` variant); an
//   import's error arrives as a thrown error whose `payload` is the variant.

import { scan } from 'bulkhost:plugin/documents@0.1.0';
import { emit } from 'bulkhost:plugin/sink@0.1.0';
import { log } from 'bulkhost:plugin/log@0.1.0';

const DATASET = 'shops_by_city';
const PAGE = 500; // documents per `scan` call (the host caps it at 1000)
const BATCH_RECORDS = 512; // records per `emit`...
const BATCH_BYTES = 256 * 1024; // ...or this many bytes, whichever comes first

const PARAMS = [
  {
    name: 'city',
    description: 'Only shops whose address ends with this city (case-insensitive); all shops when absent.',
    kind: 'string',
    required: false,
    defaultValue: undefined,
    allowedValues: [],
  },
  {
    name: 'detail',
    description: '`full`: every field of the shop; `compact`: shop_id, name and city.',
    kind: 'string',
    required: false,
    defaultValue: 'full',
    allowedValues: ['full', 'compact'],
  },
  {
    name: 'limit',
    description: 'At most this many shops (0 = no limit).',
    kind: 'integer',
    required: false,
    defaultValue: '0',
    allowedValues: [],
  },
];

const FIELDS = [
  { name: 'shop_id', kind: 'string', description: "The shop's key." },
  { name: 'name', kind: 'string', description: "The shop's name." },
  { name: 'city', kind: 'string', description: 'The last comma-separated part of the address.' },
  { name: 'address', kind: 'string', description: 'The full address (detail=full only).' },
  { name: 'open_date', kind: 'datetime', description: 'When the shop opened (detail=full only).' },
  { name: 'id', kind: 'integer', description: 'The document id (detail=full only).' },
  { name: 'version', kind: 'integer', description: "The document's version (detail=full only)." },
];

const KIND_PATTERNS = {
  integer: /^[+-]?\d+$/,
  decimal: /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/,
  boolean: /^(true|false|1|0)$/i,
};

/** `given` checked against the specs, defaults filled in: `{ values, errors }`. */
function resolve(dataset, given) {
  if (dataset !== DATASET) {
    return { values: {}, errors: [{ name: '', message: `unknown data set \`${dataset}\`` }] };
  }
  const errors = given
    .filter((p) => !PARAMS.some((spec) => spec.name === p.name))
    .map((p) => ({ name: p.name, message: 'unknown parameter' }));
  const values = {};
  for (const spec of PARAMS) {
    const value = given.findLast((p) => p.name === spec.name)?.value ?? spec.defaultValue;
    if (value === undefined) {
      if (spec.required) errors.push({ name: spec.name, message: 'is required' });
      continue;
    }
    if (!(KIND_PATTERNS[spec.kind]?.test(value.trim()) ?? true)) {
      errors.push({ name: spec.name, message: `\`${value}\` is not a valid ${spec.kind}` });
    } else if (spec.allowedValues.length && !spec.allowedValues.includes(value)) {
      errors.push({ name: spec.name, message: `must be one of ${spec.allowedValues.join(', ')}` });
    }
    values[spec.name] = value;
  }
  if (!errors.length) {
    if ((values.city ?? '').length > 100) errors.push({ name: 'city', message: 'at most 100 characters' });
    if (Number(values.limit) < 0) errors.push({ name: 'limit', message: 'must be 0 or more' });
  }
  return { values, errors };
}

const cityOf = (address) => (address ? address.split(',').pop().trim() : '');

/** The `generate-error` that fails the run with `why`. */
const failed = (why) => ({ tag: 'failed', val: why });

/** What an import's thrown error says: its WIT variant, as text. */
function reason(error) {
  const variant = error?.payload ?? error;
  if (variant?.tag === undefined) return String(variant);
  return variant.val === undefined ? variant.tag : `${variant.tag}: ${variant.val}`;
}

/** Batches records for `sink.emit`, like the Rust SDK's `Output`. */
class Output {
  batch = [];
  bytes = 0;
  count = 0;

  push(record) {
    const text = JSON.stringify(record);
    this.batch.push(text);
    this.bytes += text.length;
    this.count += 1;
    if (this.batch.length >= BATCH_RECORDS || this.bytes >= BATCH_BYTES) this.flush();
  }

  flush() {
    if (!this.batch.length) return;
    const batch = this.batch;
    this.batch = [];
    this.bytes = 0;
    try {
      emit(batch);
    } catch (error) {
      throw failed(`the sink refused a batch: ${reason(error)}`);
    }
  }
}

/** Every document of `collection` in key order, a page at a time. */
function* allDocuments(collection) {
  let cursor;
  do {
    let page;
    try {
      page = scan(collection, cursor, PAGE);
    } catch (error) {
      throw failed(`reading ${collection}: ${reason(error)}`);
    }
    yield* page.documents;
    cursor = page.next;
  } while (cursor !== undefined);
}

export const generator = {
  describe() {
    return [{
      name: DATASET,
      description: "The tenant's shops, optionally only those in one city (a JavaScript plugin built with componentize-js).",
      params: PARAMS,
      fields: FIELDS,
    }];
  },

  validate(dataset, params) {
    return resolve(dataset, params).errors;
  },

  generate(dataset, params) {
    const { values, errors } = resolve(dataset, params);
    if (errors.length) throw { tag: 'invalid-params', val: errors };
    const wanted = values.city ? values.city.trim().toLowerCase() : undefined;
    const compact = values.detail === 'compact';
    const limit = Number(values.limit);
    log('info', `${DATASET}: city=${values.city} detail=${values.detail} limit=${limit}`);

    const out = new Output();
    let scanned = 0;
    for (const doc of allDocuments('shops')) {
      scanned += 1;
      let shop;
      try {
        shop = JSON.parse(doc.body);
      } catch (error) {
        throw failed(`document ${doc.id} is not JSON: ${error}`);
      }
      const city = cityOf(typeof shop.address === 'string' ? shop.address : '');
      if (wanted !== undefined && city.toLowerCase() !== wanted) continue;
      out.push(compact
        ? { shop_id: shop.shop_id ?? null, name: shop.name ?? null, city }
        : { ...shop, city, id: Number(doc.id), version: Number(doc.version) });
      if (limit && out.count >= limit) break;
    }
    out.flush();
    if (out.count) log('info', `${DATASET}: ${out.count} of ${scanned} shops emitted`);
    else log('warn', `${DATASET}: no shop matched city=${values.city} (${scanned} scanned)`);
  },
};
