// Background workers of pg_cachekit: a launcher per cluster and an outbox
// relay per database (see launcher.cpp and outbox_relay.cpp).
#pragma once

namespace cachekit::pg {

// From _PG_init while shared_preload_libraries is processed.
void register_launcher();
// Likewise, the HTTP endpoint (metrics_endpoint.cpp) when
// cachekit.metrics_listen is set.
void register_metrics_endpoint();
// From _PG_init in every backend: DROP/RENAME DATABASE and CREATE DATABASE
// ... TEMPLATE stop the database's relay first.
void install_utility_hook();
void stop_relay_for(const char *dbname);

}  // namespace cachekit::pg
