// Package batch decodes and re-encodes Kafka record batches (message format
// v2, magic 2) as they travel in Produce requests and Fetch responses, so
// that a gateway filter can change the records inside them.
//
//	Records bytes ─▶ Decode ─▶ []Batch ─▶ (change Records) ─▶ Encode ─▶ Records bytes
//	                  │ frame, check CRC32C,            │ same compression,
//	                  │ decompress (bounded),           │ lengths and CRC32C
//	                  │ parse records                   │ recomputed
//
// Every compression Kafka defines is handled: none, gzip, snappy (raw, and
// the xerial framing the Java client writes, on decode), lz4 (frame format)
// and zstd. Control batches (transaction markers) and batches of the legacy
// formats (magic 0 and 1) are kept as their raw bytes and written back
// untouched.
//
// Decoding is bounded: a batch whose records would decompress to more than
// Codec.MaxBatchBytes is refused with ErrTooLarge before that much memory is
// used, and no input makes it panic. Records of an uncompressed batch alias
// the input slice; records of a compressed batch alias a buffer of their own.
package batch
