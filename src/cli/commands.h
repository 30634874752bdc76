// The four commands of pg_cachekit-cdn. Each returns the exit code, or throws
// CliError, whose code main() exits with.
#pragma once

#include "cli/options.h"

namespace cachekit::cli {

int run_status(const Options &o);
int run_sync(const Options &o);
int run_invalidate(const Options &o);
int run_test(const Options &o);

}  // namespace cachekit::cli
