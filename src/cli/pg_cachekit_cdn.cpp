// pg_cachekit-cdn: the command-line tool for pg_cachekit's CDN purges and
// asset manifest (status, sync DIR, invalidate PATH..., test). See
// docs/cdn-cli.md; exit codes are in cli_error.h.
#include <curl/curl.h>

#include <cstdio>
#include <exception>

#include "cli/cli_error.h"
#include "cli/commands.h"
#include "cli/options.h"

namespace cli = cachekit::cli;

namespace {

void print_error(const cli::CliError &e) {
  std::fprintf(stderr, "%s: error: %s\n", cli::kProgramName, e.what());
  if (!e.detail().empty()) std::fprintf(stderr, "DETAIL:  %s\n", e.detail().c_str());
  if (!e.hint().empty()) std::fprintf(stderr, "HINT:  %s\n", e.hint().c_str());
}

int run(int argc, char **argv) {
  cli::Options o = cli::parse_options(argc, argv);
  if (o.help) {
    std::fputs(cli::usage_text(), stdout);
    return cli::kExitOk;
  }
  if (o.version) {
    std::printf("%s %s\n", cli::kProgramName, cli::kVersion);
    return cli::kExitOk;
  }
  if (o.command == "status") return cli::run_status(o);
  if (o.command == "sync") return cli::run_sync(o);
  if (o.command == "invalidate") return cli::run_invalidate(o);
  return cli::run_test(o);
}

}  // namespace

int main(int argc, char **argv) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "%s: error: could not initialise libcurl\n", cli::kProgramName);
    return cli::kExitProvider;
  }
  int rc;
  try {
    rc = run(argc, argv);
  } catch (const cli::CliError &e) {
    std::fflush(stdout);
    print_error(e);
    rc = e.code();
  } catch (const std::exception &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", cli::kProgramName, e.what());
    rc = cli::kExitProvider;
  }
  std::fflush(stdout);
  curl_global_cleanup();
  return rc;
}
