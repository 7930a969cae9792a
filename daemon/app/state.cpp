#include "app/state.h"

#include "store/pg_store.h"

namespace tactd {

std::unique_ptr<Store> open_state(const Config& config, boost::asio::io_context* loop) {
  if (config.state_url.empty()) return Store::open(config.state_path, config.full_sync ? Sync::kFull : Sync::kNormal);
  const std::string conninfo = postgres_conninfo(config.state_url, config.state_password);
  if (loop) return open_postgres_store(conninfo, *loop);
  return open_postgres_store(conninfo);
}

std::string state_name(const Config& config) {
  return config.state_url.empty() ? config.state_path.string() : masked_conninfo(config.state_url);
}

}  // namespace tactd
