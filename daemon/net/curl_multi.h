// Internal to net: libcurl's multi-socket interface driven by a Boost.Asio
// io_context, shared by the HTTP and SMTP clients. A transfer is an easy
// handle its client has configured; the engine runs it on the loop and
// hands it back when curl is done. Not part of net's interface.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace tactd::curl {

// Gives an easy handle back for reuse (curl_easy_reset, kept in a small
// pool of the thread's) instead of creating one per transfer: a new handle
// costs several allocations and its defaults set up again.
struct EasyDeleter {
  void operator()(CURL* easy) const;
};
struct ListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// One transfer: its handle plus whatever the handle's options point into,
// which lives as long as the transfer.
class Transfer {
 public:
  Transfer();  // takes an easy handle from the pool or creates one; easy() is null if curl could not
  virtual ~Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  CURL* easy() const { return easy_.get(); }

  // Runs on the loop once curl has finished with the handle: `result` is
  // CURLE_OK or why it failed. The engine destroys the transfer afterwards.
  virtual void finish(CURLcode result) = 0;
  // Runs on the loop when the transfer could not even start.
  virtual void fail(const std::string& error) = 0;

 private:
  std::unique_ptr<CURL, EasyDeleter> easy_;
};

// Runs transfers on the loop. Call everything on the loop's thread.
class Engine {
 public:
  // `io` must outlive the engine. Destroying the engine abandons the
  // transfers in flight without calling them back.
  static std::unique_ptr<Engine> create(boost::asio::io_context& io);
  virtual ~Engine() = default;

  // Starts `transfer` and returns at once; its finish() or fail() runs
  // later on the loop, never inside start().
  virtual void start(std::unique_ptr<Transfer> transfer) = 0;
};

}  // namespace tactd::curl
