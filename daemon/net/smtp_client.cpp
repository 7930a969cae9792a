#include "net/smtp_client.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "net/curl_multi.h"

namespace tactd {
namespace {

// One SMTP session in flight.
class SmtpTransfer final : public curl::Transfer {
 public:
  SmtpTransfer(SmtpRequest request, std::function<void(SmtpResponse)> done)
      : request_(std::move(request)), done_(std::move(done)) {
    CURL* easy = this->easy();
    if (!easy) return;
    curl_easy_setopt(easy, CURLOPT_URL, request_.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(easy, CURLOPT_USE_SSL, request_.require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY);
    if (!request_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, request_.ca_file.c_str());
    if (!request_.username.empty()) {
      curl_easy_setopt(easy, CURLOPT_USERNAME, request_.username.c_str());
      curl_easy_setopt(easy, CURLOPT_PASSWORD, request_.password.c_str());
    }
    const std::string from = "<" + request_.mail_from + ">";
    curl_easy_setopt(easy, CURLOPT_MAIL_FROM, from.c_str());  // curl copies strings it is given
    curl_slist* list = nullptr;
    for (const std::string& to : request_.recipients) list = curl_slist_append(list, ("<" + to + ">").c_str());
    recipients_.reset(list);
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, list);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request_.message.size()));
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, this);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request_.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_.data());
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_reply);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
  }

  void finish(CURLcode result) override {
    SmtpResponse response;
    curl_easy_getinfo(easy(), CURLINFO_RESPONSE_CODE, &response.code);
    if (result != CURLE_OK) {
      response.error = error_[0] != '\0' ? std::string(error_.data()) : std::string(curl_easy_strerror(result));
      if (!reply_.empty()) response.error += ": " + reply_;  // the server's own words
    }
    done_(std::move(response));
  }

  void fail(const std::string& error) override {
    SmtpResponse response;
    response.error = error;
    done_(std::move(response));
  }

 private:
  // curl hands SMTP's replies to the header callback: keep the latest
  // refusal (a 4xx or 5xx line, the server's reason), else the last line.
  // After a refusal curl still says QUIT, whose "221 Bye" tells nothing; an
  // earlier refusal curl got past (EHLO refused, HELO taken) is not why
  // the send failed.
  static size_t on_reply(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<SmtpTransfer*>(user);
    std::string_view line(data, size * count);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    const bool refusal = !line.empty() && (line.front() == '4' || line.front() == '5');
    if (refusal || !self->refused_) self->reply_.assign(line.substr(0, kMaxReply));
    self->refused_ = self->refused_ || refusal;
    return size * count;
  }

  static size_t on_read(char* buffer, size_t size, size_t count, void* user) {
    auto* self = static_cast<SmtpTransfer*>(user);
    const size_t n = std::min(size * count, self->request_.message.size() - self->sent_);
    std::copy_n(self->request_.message.data() + self->sent_, n, buffer);
    self->sent_ += n;
    return n;
  }

  SmtpRequest request_;
  std::function<void(SmtpResponse)> done_;
  std::unique_ptr<curl_slist, curl::ListDeleter> recipients_;
  std::size_t sent_ = 0;  // bytes of the message curl has read
  std::array<char, CURL_ERROR_SIZE> error_{};
  std::string reply_;     // the server's latest refusal, or its last reply line
  bool refused_ = false;  // reply_ is a refusal
  static constexpr std::size_t kMaxReply = 512;
};

class CurlSmtpClient final : public SmtpClient {
 public:
  explicit CurlSmtpClient(boost::asio::io_context& io) : engine_(curl::Engine::create(io)) {}
  void send(SmtpRequest request, std::function<void(SmtpResponse)> done) override {
    engine_->start(std::make_unique<SmtpTransfer>(std::move(request), std::move(done)));
  }

 private:
  std::unique_ptr<curl::Engine> engine_;
};

}  // namespace

std::unique_ptr<SmtpClient> SmtpClient::create(boost::asio::io_context& io) {
  return std::make_unique<CurlSmtpClient>(io);
}

}  // namespace tactd
