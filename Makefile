# PGXS build of the pg_cachekit extension.
#   make && make install     build and install the library, control file and SQL scripts
#   make installcheck        pg_regress suites against a running server (PGHOST/PGPORT)
#   make test                the whole suite on a throwaway cluster + Redis (tools/run-tests)
#   make demo                set up everything and show what the extension does (tools/demo)
#   make report              a short demo workload drawn to a PNG with gnuplot (tools/report)
#   make deps                install missing Debian packages (tools/deps)
#   make bench               long consistency run and the benchmarks (test/bench/run-all)
#   make mutation            plant known bugs one at a time, check the tests catch each (test/mutation/run)

MODULE_big = pg_cachekit
EXTVERSION = 0.1.0

CORE_SRCS   = $(wildcard src/core/*.cpp)
PG_SRCS     = $(wildcard src/pg/*.cpp)
WORKER_SRCS = $(wildcard worker/*.cpp)
OBJS = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o) $(WORKER_SRCS:.cpp=.o)

# The control file lives in extension/, so install it as DATA rather than
# through EXTENSION (which expects it at the top level).
MODULEDIR = extension
DATA = extension/pg_cachekit.control $(wildcard sql/pg_cachekit--*.sql)

REGRESS = setup boundary cache session privileges stats outage cached_query cached_query_uncacheable cached_query_security cached_query_writes key_rules cached_query_privileges cached_query_connection cached_query_plans call_plan cached_query_2pc install_schema redis_password kv_namespace replica_triggers key_rules_overflow replication_role stale_edges relay watch_disabled_trigger drop_no_generation_entry tasks tasks_limits cdn l1_cache value_invalidation monitoring transparent explain
REGRESS_OPTS = --inputdir=test/regress --outputdir=build/regress
ISOLATION := $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=build/isolation

PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server)
# -MMD -MP: header dependencies (PGXS tracks them only in --enable-depend
# builds); a changed header must rebuild every object that includes it.
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-register -Wno-missing-field-initializers \
              -fno-omit-frame-pointer -MMD -MP
EXTRA_CLEAN = $(OBJS:.o=.d) build
SHLIB_LINK = -lhiredis -lcurl -lstdc++

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

-include $(OBJS:.o=.d)

# Debian's server is built with LLVM; its bitcode rule does not see PG_CXXFLAGS.
BITCODE_CXXFLAGS += -std=c++17 -Wno-register -I$(srcdir)/src

installcheck: | build-dirs
.PHONY: build-dirs test demo report deps format bench mutation
build-dirs:
	@mkdir -p build/regress build/isolation

test:
	tools/run-tests

demo:
	tools/demo

report:
	tools/report

bench:
	test/bench/run-all

mutation:
	test/mutation/run

deps:
	@tools/deps

format:
	clang-format -i $(wildcard src/core/*.h src/core/*.cpp src/pg/*.h src/pg/*.cpp worker/*.h worker/*.cpp test/unit/*.cpp)

# ---- pg_cachekit-cdn: the CDN command-line tool (src/cli/, built by CMake) ----
# `make` builds it in build/cmake (the unit tests' CMake tree), `make install`
# copies it into pg_config's bindir.
CDN_CLI_BUILD_DIR = build/cmake
.PHONY: cdn-cli install-cdn-cli uninstall-cdn-cli
all: cdn-cli
cdn-cli:
	@test -f $(CDN_CLI_BUILD_DIR)/CMakeCache.txt || cmake -S . -B $(CDN_CLI_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(CDN_CLI_BUILD_DIR) --target pg_cachekit-cdn
install: install-cdn-cli
install-cdn-cli: cdn-cli
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(CDN_CLI_BUILD_DIR)/pg_cachekit-cdn '$(DESTDIR)$(bindir)/pg_cachekit-cdn'
uninstall: uninstall-cdn-cli
uninstall-cdn-cli:
	rm -f '$(DESTDIR)$(bindir)/pg_cachekit-cdn'
# ---- end of pg_cachekit-cdn ----
