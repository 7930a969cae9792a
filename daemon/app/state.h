// Opening the configured state: the SQLite file of [tactd] state, or the
// PostgreSQL database of [tactd] state = "postgresql://..." / [state] url,
// which is migrated under an advisory lock first (store/pg_store.h).
// Nothing past this point knows which backend it got.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "store/store.h"

namespace boost::asio {
class io_context;
}

namespace tactd {

// Opens and migrates the configured state. Throws StoreError. `loop`: the
// daemon's, on which a database server is reached without blocking it
// (its store then has fibers(): store/state_runner.h); nullptr for the
// command-line verbs, which wait for each answer.
std::unique_ptr<Store> open_state(const Config& config, boost::asio::io_context* loop = nullptr);

// The state for people and logs: the SQLite file's path, or the database
// URL (which never holds the password; masked all the same).
std::string state_name(const Config& config);

}  // namespace tactd
