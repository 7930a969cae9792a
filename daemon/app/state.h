// Opening the configured state: the SQLite file of [tactd] state, or the
// PostgreSQL database of [tactd] state = "postgresql://..." / [state] url,
// which is migrated under an advisory lock first (store/pg_store.h).
// Nothing past this point knows which backend it got.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "store/store.h"

namespace tactd {

// Opens and migrates the configured state. Throws StoreError.
std::unique_ptr<Store> open_state(const Config& config);

// The state for people and logs: the SQLite file's path, or the database
// URL (which never holds the password; masked all the same).
std::string state_name(const Config& config);

}  // namespace tactd
