// Plain aligned columns for the tool's listings (status, invalidate --wait).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace cachekit::cli {

// Cells longer than max_cell characters are cut with "..." so one long error
// cannot push every other column off the screen.
void print_table(std::FILE *out, const std::vector<std::string> &header,
                 const std::vector<std::vector<std::string>> &rows, std::size_t max_cell = 60);

}  // namespace cachekit::cli
