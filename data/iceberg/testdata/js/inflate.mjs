// hyparquet-compressors, as icebird's Avro reader imports it, with one
// function replaced: gunzip, which icebird calls for Avro's "deflate"
// codec (raw DEFLATE blocks). hyparquet-compressors 1.1.1 and 1.1.2 take
// the bytes after a raw DEFLATE stream's final block for a further gzip
// member and decode the stream again into a full buffer, which fails
// ("offset is out of bounds") as soon as the stream holds a stored block,
// as every stream Go's compress/flate writes does (it ends with an empty
// stored block). iceberg-go writes manifests with Go's deflate, so icebird
// reads them through node's own zlib instead.
import { inflateRawSync } from 'node:zlib'
export * from 'hyparquet-compressors'

/** @param {Uint8Array} input */
export function gunzip(input) {
  return new Uint8Array(inflateRawSync(input))
}
