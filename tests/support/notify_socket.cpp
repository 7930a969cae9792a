#include "support/notify_socket.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tactd::test {

NotifySocket::NotifySocket() : path_((dir_.path() / "notify").string()) {
  sockaddr_un address{};
  if (path_.size() >= sizeof address.sun_path) throw std::runtime_error("socket path too long: " + path_);
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path_.c_str(), path_.size());
  const int on = 1;
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0 ||
      ::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on) != 0) {
    ::close(fd_);
    throw std::runtime_error("cannot bind " + path_ + ": " + std::strerror(errno));
  }
}

NotifySocket::~NotifySocket() { ::close(fd_); }

const std::vector<NotifySocket::Datagram>& NotifySocket::received() {
  for (;;) {
    char text[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(timeval))];
    iovec data{text, sizeof text};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_, &message, 0);
    if (n < 0) break;
    Datagram datagram{std::string(text, static_cast<std::size_t>(n)), 0, {}};
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_CREDENTIALS) {
        ucred credentials{};
        std::memcpy(&credentials, CMSG_DATA(c), sizeof credentials);
        datagram.sender = credentials.pid;
      } else if (c->cmsg_type == SCM_TIMESTAMP) {
        timeval at{};
        std::memcpy(&at, CMSG_DATA(c), sizeof at);
        datagram.arrived = std::chrono::system_clock::time_point(std::chrono::seconds{at.tv_sec} +
                                                                 std::chrono::microseconds{at.tv_usec});
      }
    }
    all_.push_back(std::move(datagram));
  }
  return all_;
}

std::vector<std::string> NotifySocket::starting_with(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& d : received())
    if (d.text.rfind(prefix, 0) == 0) out.push_back(d.text);
  return out;
}

std::optional<std::string> NotifySocket::next() {
  if (taken_ == received().size()) return std::nullopt;
  return all_[taken_++].text;
}

}  // namespace tactd::test
