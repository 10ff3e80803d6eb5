// The checks every request passes before a route (src/api/request_guard.h): key comparison, Host names
// on a loopback bind (DNS rebinding), and browser Origins.
#include <gtest/gtest.h>

#include "api/request_guard.h"

namespace tern::api {
namespace {

TEST(RequestGuard, ConstantTimeEqualIsEquality) {
  EXPECT_TRUE(constant_time_equal("Bearer k", "Bearer k"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("Bearer k", "Bearer K"));
  EXPECT_FALSE(constant_time_equal("Bearer k", "Bearer k2"));
  EXPECT_FALSE(constant_time_equal("Bearer k2", "Bearer k"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
  EXPECT_FALSE(constant_time_equal(std::string("ab\0", 3), "ab"));  // a shorter string is not padded equal
}

TEST(RequestGuard, HostNames) {
  EXPECT_EQ(host_name("Example.COM:8080"), "example.com");
  EXPECT_EQ(host_name("[::1]:80"), "::1");
  EXPECT_EQ(host_name("localhost."), "localhost");
  EXPECT_EQ(host_name(" 127.0.0.1 "), "127.0.0.1");
  EXPECT_TRUE(is_loopback_name("127.0.0.1"));
  EXPECT_TRUE(is_loopback_name("127.1.2.3"));
  EXPECT_TRUE(is_loopback_name("app.localhost"));
  EXPECT_FALSE(is_loopback_name("127.0.0.1.evil.com"));
  EXPECT_FALSE(is_loopback_name("0.0.0.0"));
  EXPECT_FALSE(is_loopback_name("localhost.evil.com"));
}

TEST(RequestGuard, HostOnALoopbackBind) {
  const std::vector<std::string> none, extra = {"tern.lan"};
  for (const char* h : {"localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST", "127.0.0.1"}) {
    EXPECT_TRUE(host_allowed(h, "127.0.0.1", none)) << h;
  }
  EXPECT_FALSE(host_allowed("evil.example:8080", "127.0.0.1", none));
  EXPECT_TRUE(host_allowed("", "127.0.0.1", none));  // HTTP/1.0 without Host: not a browser
  EXPECT_FALSE(host_allowed("10.0.0.5:8080", "127.0.0.1", none));
  EXPECT_TRUE(host_allowed("tern.lan:8080", "127.0.0.1", extra));
  // Not a loopback bind: the API key guards it, any Host goes.
  EXPECT_TRUE(host_allowed("evil.example", "0.0.0.0", none));
  EXPECT_TRUE(host_allowed("", "10.0.0.5", none));
}

TEST(RequestGuard, Origins) {
  const std::vector<std::string> none, app = {"http://app.example"}, any = {"*"};
  EXPECT_EQ(check_origin("", "localhost:8080", none), OriginVerdict::kNoOrigin);
  EXPECT_EQ(check_origin("http://localhost:8080", "localhost:8080", none), OriginVerdict::kSameOrigin);
  EXPECT_EQ(check_origin("http://localhost:9999", "localhost:8080", none), OriginVerdict::kRefused);
  EXPECT_EQ(check_origin("http://evil.example", "localhost:8080", none), OriginVerdict::kRefused);
  EXPECT_EQ(check_origin("null", "localhost:8080", none), OriginVerdict::kRefused);
  EXPECT_EQ(check_origin("http://app.example", "localhost:8080", app), OriginVerdict::kAllowed);
  EXPECT_EQ(check_origin("http://APP.example", "localhost:8080", app), OriginVerdict::kAllowed);
  EXPECT_EQ(check_origin("https://app.example", "localhost:8080", app), OriginVerdict::kRefused);
  EXPECT_EQ(check_origin("http://whatever", "localhost:8080", any), OriginVerdict::kAllowed);
}

}  // namespace
}  // namespace tern::api
