// Reads the published Iceberg table with icebird, an Iceberg reader no one
// here wrote, and prints its rows as JSON on stdout: {"version", "rows"}.
// Values are normalised as the Go test compares them: integers as decimal
// strings, date-times as "YYYY-MM-DD HH:MM:SS", lists as arrays.
//
// usage: node read.mjs TABLE_URL FILE_PREFIX HTTP_PREFIX
//
// TABLE_URL is the table's location served over HTTP (icebird loads it
// through metadata/version-hint.text). The table records its files as
// absolute file:// URIs; this script's fetch maps FILE_PREFIX to
// HTTP_PREFIX, so that the test serves the data directory as it is and
// never changes the table.
import { register } from 'node:module'

// icebird's Avro "deflate" goes through node's zlib: see inflate.mjs.
register('./inflate-hook.mjs', import.meta.url)
const { icebergLatestVersion, icebergRead } = await import('icebird')

const [tableUrl, filePrefix, httpPrefix] = process.argv.slice(2)
const realFetch = globalThis.fetch
globalThis.fetch = (input, init) => {
  let url = typeof input === 'string' ? input : input.url
  if (url.startsWith(filePrefix)) url = httpPrefix + url.slice(filePrefix.length)
  return realFetch(url, init)
}

function pad(n, w = 2) { return String(n).padStart(w, '0') }

function norm(v) {
  if (v === null || v === undefined) return null
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Date) {
    return `${pad(v.getUTCFullYear(), 4)}-${pad(v.getUTCMonth() + 1)}-${pad(v.getUTCDate())} ` +
      `${pad(v.getUTCHours())}:${pad(v.getUTCMinutes())}:${pad(v.getUTCSeconds())}`
  }
  if (Array.isArray(v)) return v.map(norm)
  return v
}

const version = await icebergLatestVersion({ tableUrl })
const rows = await icebergRead({ tableUrl })
const out = rows.map(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, norm(v)])))
process.stdout.write(JSON.stringify({ version, rows: out }))
