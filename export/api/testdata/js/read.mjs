// read.mjs FORMAT FILE reads a worklog export with a reader no one on the
// project wrote: apache-arrow for an Arrow IPC stream, hyparquet (with
// hyparquet-compressors for zstd) for Parquet. It prints one JSON object:
// {"header": [...], "types": [...], "rows": [[...], ...]}, every cell as
// the JSON export renders it as text: "" for null, numbers by value,
// date-times "YYYY-MM-DD HH:MM:SS", dates "YYYY-MM-DD"; a list is a JSON
// array of its items. types names each column's type as the reader
// reports it.
import { readFileSync } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const [format, path] = process.argv.slice(2);
const bytes = readFileSync(path);

const pad = (n) => String(n).padStart(2, '0');
const dateTime = (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
const dateOnly = (d) => dateTime(d).slice(0, 10);

// cell renders one value; kind is 'date' for a day, 'time' for a date-time.
function cell(v, kind) {
  if (v === null || v === undefined) return '';
  if (kind === 'date' || kind === 'time') {
    const d = v instanceof Date ? v : new Date(Number(v));
    return kind === 'date' ? dateOnly(d) : dateTime(d);
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v;
  if (Array.isArray(v) || (typeof v === 'object' && typeof v.toArray === 'function')) {
    return Array.from(Array.isArray(v) ? v : v.toArray());
  }
  throw new Error(`value ${v} of type ${typeof v}`);
}

const out = { header: [], types: [], rows: [] };
if (format === 'arrow') {
  const table = tableFromIPC(bytes);
  const kinds = [];
  for (const f of table.schema.fields) {
    out.header.push(f.name);
    out.types.push(String(f.type) + (f.type.timezone ? ` tz=${f.type.timezone}` : ''));
    const t = String(f.type);
    kinds.push(t.startsWith('Date') ? 'date' : t.startsWith('Timestamp') ? 'time' : '');
  }
  for (let i = 0; i < table.numRows; i++) {
    out.rows.push(table.schema.fields.map((f, c) => cell(table.getChildAt(c).get(i), kinds[c])));
  }
} else if (format === 'parquet') {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const meta = parquetMetadata(file);
  // Top-level columns: the children of the root, with their logical type
  // (a LIST is a group; its leaf is a string).
  const kinds = [];
  let i = 1;
  const schema = meta.schema;
  for (let n = 0; n < schema[0].num_children; n++) {
    const el = schema[i];
    out.header.push(el.name);
    const lt = el.logical_type;
    const ct = el.converted_type;
    let type = lt ? lt.type : (ct || el.type);
    if (lt && lt.type === 'TIMESTAMP') type += ` adjustedToUTC=${lt.isAdjustedToUTC} unit=${lt.unit}`;
    out.types.push(type);
    kinds.push(type.startsWith('DATE') ? 'date' : type.startsWith('TIMESTAMP') ? 'time' : '');
    // Skip the element and its descendants.
    let skip = 1;
    let j = i;
    while (skip > 0) {
      skip += (schema[j].num_children || 0) - 1;
      j++;
    }
    i = j;
  }
  const rows = await parquetReadObjects({ file, compressors });
  for (const r of rows) out.rows.push(out.header.map((h, c) => cell(r[h], kinds[c])));
} else {
  throw new Error(`unknown format ${format}`);
}
process.stdout.write(JSON.stringify(out));
