// The cursor role of the store: where each source left off.
#pragma once

#include <optional>
#include <string>

namespace tactd {

// Implementations throw StoreError (store_error.h). Through a
// Store::Transaction, each call runs within it; on the Store, in a
// transaction of its own (refused, std::logic_error, while a Transaction is
// open: store.h).
class CursorStore {
 public:
  // Where a source left off (an updated_at value, a page token), or nullopt
  // before its first batch. Set it in the transaction that commits the
  // batch it belongs to, so that data and cursor never disagree.
  virtual std::optional<std::string> cursor(const std::string& source) const = 0;
  virtual void set_cursor(const std::string& source, const std::string& value) = 0;

 protected:
  ~CursorStore() = default;
};

}  // namespace tactd
