// How key/value cache values are stored in Redis.
//
// Values are stored as their raw bytes, with no header: application code that
// reads the same Redis keys (a Python or Node client) gets exactly what was
// set. text is stored as its bytes in the database encoding, bytea verbatim,
// jsonb as its canonical text form. Reading a value back as text or jsonb
// checks that the bytes can be such a value.
#pragma once

#include <cstddef>
#include <string_view>

namespace cachekit {

// Throws cachekit::Error (54000) when the value is larger than max_bytes.
void check_value_size(std::size_t value_bytes, std::size_t max_bytes);

// Postgres text cannot hold NUL bytes. Throws cachekit::Error (22021) naming
// the offset of the first NUL, with a hint to use cache_get_bytea().
void check_text_compatible(std::string_view value);

}  // namespace cachekit
