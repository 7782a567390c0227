// A module hook for read.mjs: icebird's Avro reader (icebird/src/avro)
// gets inflate.mjs in place of 'hyparquet-compressors'. Nothing else
// changes: icebird's metadata, manifest and Parquet reading, and
// hyparquet's own decompressors, are the published packages as installed.
export async function resolve(specifier, context, next) {
  if (specifier === 'hyparquet-compressors' && context.parentURL?.includes('/icebird/src/avro/')) {
    return next(new URL('./inflate.mjs', import.meta.url).href, context)
  }
  return next(specifier, context)
}
