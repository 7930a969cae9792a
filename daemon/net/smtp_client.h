// The outbound SMTP client: libcurl's SMTP on the same non-blocking
// multi-socket engine as the HTTP client, so sending mail never blocks the
// loop. One send() is one SMTP session: TLS (STARTTLS on smtp://, implicit
// on smtps://), AUTH when a username is given, MAIL FROM, RCPT TO, DATA.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace tactd {

struct SmtpRequest {
  std::string url;                // "smtp://host:587" or "smtps://host:465"
  bool require_tls = true;        // smtp:// must upgrade with STARTTLS, or nothing is sent
  std::filesystem::path ca_file;  // extra CA certificates to trust; empty: the system's
  std::string username;           // empty: no AUTH
  std::string password;
  std::string mail_from;  // the envelope sender, "shop@example.com"
  std::vector<std::string> recipients;
  std::string message;                        // RFC 5322 text with CRLF line ends; curl dot-stuffs it
  std::chrono::milliseconds timeout{30'000};  // the whole session
};

struct SmtpResponse {
  // The server's last reply code (250 when the message was accepted); 0
  // when there was none (refused, timed out, TLS failed).
  long code = 0;
  std::string error;  // empty when the message was accepted
};

class SmtpClient {
 public:
  virtual ~SmtpClient() = default;
  // `io` must outlive the client. Call everything on the loop's thread.
  static std::unique_ptr<SmtpClient> create(boost::asio::io_context& io);

  // Starts a session and returns at once; `done` runs on the loop with the
  // outcome. Destroying the client abandons the sessions in flight without
  // calling their `done`.
  virtual void send(SmtpRequest request, std::function<void(SmtpResponse)> done) = 0;
};

}  // namespace tactd
