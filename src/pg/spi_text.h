// SQL for the workers' own statements, values passed and returned as text:
// their statements are few, short and repeated, so each is prepared once
// per text and kept (the plan cache re-plans it after DDL or a change of
// search_path). Call inside SPI_connect; throws PgError.
#pragma once

#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

// A row: column values as text (NULL: nullopt).
using SpiRow = std::vector<std::optional<std::string>>;

// Runs `text` with parameters of `types` given as text (nullopt: NULL).
std::vector<SpiRow> spi_text_query(const std::string &text, const std::vector<Oid> &types,
                                   const std::vector<std::optional<std::string>> &args);

}  // namespace cachekit::pg
