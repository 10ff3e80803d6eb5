// Replica addresses, the replica file, and the set (replica_set.h).
#include "router/replica_set.h"

#include <cctype>
#include <fstream>
#include <sstream>

namespace tern::router {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<ReplicaAddress> parse_replica_url(std::string_view text) {
  const std::string given(text);
  std::string_view t = trim(text);
  if (t.rfind("https://", 0) == 0) {
    return Status::error("replica '" + given + "': https is not supported (replicas are reached over plain HTTP)");
  }
  if (t.rfind("http://", 0) == 0) t.remove_prefix(7);
  if (!t.empty() && t.back() == '/') t.remove_suffix(1);
  if (t.find('/') != std::string_view::npos) {
    return Status::error("replica '" + given + "': a replica is http://host:port, without a path");
  }
  ReplicaAddress a;
  std::string_view port;
  if (!t.empty() && t.front() == '[') {  // [v6]:port
    const size_t close = t.find(']');
    if (close == std::string_view::npos) return Status::error("replica '" + given + "': unclosed '[' in the address");
    a.host = std::string(t.substr(1, close - 1));
    std::string_view rest = t.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return Status::error("replica '" + given + "': expected ':port' after ']'");
    port = rest.empty() ? "" : rest.substr(1);
  } else {
    const size_t colon = t.rfind(':');
    if (colon != std::string_view::npos && t.find(':') != colon) {
      return Status::error("replica '" + given + "': an IPv6 address goes in brackets ([::1]:8080)");
    }
    a.host = std::string(t.substr(0, colon));
    port = colon == std::string_view::npos ? "" : t.substr(colon + 1);
  }
  if (a.host.empty()) return Status::error("replica '" + given + "': no host");
  for (char c : a.host) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '@' || c == '?' || c == '#') {
      return Status::error("replica '" + given + "': invalid character in the host");
    }
  }
  if (port.empty()) port = "80";
  long value = 0;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c)) || value > 65535) {
      return Status::error("replica '" + given + "': the port must be a number from 1 to 65535");
    }
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) return Status::error("replica '" + given + "': the port must be a number from 1 to 65535");
  a.port = std::to_string(value);
  const bool v6 = a.host.find(':') != std::string::npos;
  a.url = "http://" + (v6 ? "[" + a.host + "]" : a.host) + ":" + a.port;
  return a;
}

Result<std::vector<ReplicaAddress>> parse_replica_list(std::string_view text, const std::string& source) {
  std::vector<ReplicaAddress> out;
  size_t line_no = 0, at = 0;
  while (at <= text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    line_no++;
    const size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    auto a = parse_replica_url(line);
    if (!a.is_ok()) return a.status().with_context(source + ":" + std::to_string(line_no));
    for (const ReplicaAddress& seen : out) {
      if (seen.url == a->url) {
        return Status::error(source + ":" + std::to_string(line_no) + ": replica " + a->url + " is listed twice");
      }
    }
    out.push_back(std::move(a).value());
  }
  return out;
}

Result<std::vector<ReplicaAddress>> load_replica_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::error("cannot read the replica file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::error("cannot read the replica file " + path);
  auto list = parse_replica_list(ss.str(), path);
  if (list.is_ok() && list->empty()) return Status::error(path + ": no replica listed");
  return list;
}

void ReplicaSet::assign(const std::vector<ReplicaAddress>& addresses) {
  std::vector<std::shared_ptr<Replica>> next;
  std::vector<std::string> ids;
  for (const ReplicaAddress& a : addresses) {
    std::shared_ptr<Replica> r;
    for (const auto& old : replicas_) {
      if (old->addr.url == a.url) r = old;
    }
    if (!r) {
      r = std::make_shared<Replica>();
      r->addr = a;
    }
    next.push_back(r);
    ids.push_back(a.url);
  }
  replicas_ = std::move(next);
  ring_ = HashRing(ids);
}

}  // namespace tern::router
