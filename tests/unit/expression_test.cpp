#include "rules/expression.h"

#include <catch2/catch.hpp>

using namespace tactd;

namespace {

const nlohmann::json kScope = {
    {"order",
     {{"status", "cancelled"},
      {"total", 31.4},
      {"items", 3},
      {"paid", true},
      {"cancel_reason", "kitchen overloaded"},
      {"promised_by", "2026-11-20T12:00:00+01:00"}}},
    {"shipment", {{"eta", "2026-11-20T11:30:00Z"}, {"status", "in_transit"}}},
    {"customer",
     {{"prefers", "sms"}, {"opt_out", false}, {"situations", {"payment_difficulty"}}, {"name", ""}, {"tags", {}}}},
};

bool eval(const std::string& text, const nlohmann::json& scope = kScope) {
  Diagnostics errors;
  auto e = Expression::parse(text, SourceSpot{"r.toml", 1, 1}, errors);
  INFO(text);
  INFO((errors.empty() ? std::string() : errors[0].str()));
  REQUIRE(e);
  return e->test(scope);
}

// Parses `text` as if it started at r.toml:7:9 and returns the one error.
std::string error(const std::string& text) {
  Diagnostics errors;
  auto e = Expression::parse(text, SourceSpot{"r.toml", 7, 9}, errors);
  INFO(text);
  CHECK_FALSE(e);
  REQUIRE(errors.size() == 1);
  return errors[0].str();
}

}  // namespace

TEST_CASE("comparisons of text, numbers and booleans") {
  CHECK(eval("order.status == 'cancelled'"));
  CHECK(eval("order.status == \"cancelled\""));
  CHECK_FALSE(eval("order.status != 'cancelled'"));
  CHECK(eval("order.total > 30"));
  CHECK(eval("order.total >= 31.4"));
  CHECK(eval("order.total <= 31.4"));
  CHECK_FALSE(eval("order.total < 31.4"));
  CHECK(eval("order.items == 3.0"));
  CHECK(eval("order.paid == true"));
  CHECK(eval("customer.opt_out == false"));
  CHECK(eval("order.total > -5"));
}

TEST_CASE("a missing field is null") {
  CHECK(eval("order.nothing == null"));
  CHECK(eval("payment.status == null"));
  CHECK_FALSE(eval("order.nothing == 'x'"));
  CHECK_FALSE(eval("order.nothing > 3"));
  CHECK(eval("order.status.deeper == null"));
}

TEST_CASE("ordering other than number with number or text with text is false") {
  CHECK_FALSE(eval("order.total > 'a'"));
  CHECK_FALSE(eval("order.status < 3"));
  CHECK_FALSE(eval("order.paid > false"));
  CHECK(eval("order.status > 'a'"));
  CHECK(eval("'apple' < 'banana'"));
}

TEST_CASE("RFC 3339 times compare as instants across offsets") {
  // 12:00+01:00 is 11:00Z, which is before 11:30Z, though "2026-11-20T12" > "2026-11-20T11" as text.
  CHECK(eval("shipment.eta > order.promised_by"));
  CHECK_FALSE(eval("shipment.eta <= order.promised_by"));
  CHECK(eval("order.promised_by == '2026-11-20T12:00:00+01:00'"));
  CHECK(eval("'2026-11-20T12:30:00+01:00' > '2026-11-20T11:00:00Z'"));
}

TEST_CASE("&&, || and ! with the usual precedence") {
  CHECK(eval("order.paid || order.total > 100 && false"));  // || binds looser than &&
  CHECK_FALSE(eval("(order.paid || order.total > 100) && false"));
  CHECK(eval("!customer.opt_out"));
  CHECK(eval("!!order.paid"));
  CHECK_FALSE(eval("!order.status == 'cancelled'"));  // ! applies to the comparison
  CHECK(eval("order.status == 'cancelled' && exists(order.cancel_reason)"));
}

TEST_CASE("in a list of literals, and in a list field") {
  CHECK(eval("order.status in ['placed', 'cancelled']"));
  CHECK_FALSE(eval("order.status in ['placed']"));
  CHECK_FALSE(eval("order.status in []"));
  CHECK(eval("order.items in [1, 2, 3]"));
  CHECK(eval("'payment_difficulty' in customer.situations"));
  CHECK_FALSE(eval("'vip' in customer.situations"));
  CHECK_FALSE(eval("'x' in customer.prefers"));
  CHECK_FALSE(eval("'x' in customer.missing"));
}

TEST_CASE("exists() is true for present fields only") {
  CHECK(eval("exists(order.cancel_reason)"));
  CHECK_FALSE(eval("exists(order.refund)"));
  CHECK_FALSE(eval("exists(subscription.price)"));
  CHECK(eval("exists(customer.name)"));  // present though empty
}

TEST_CASE("a bare value is true when it has something in it") {
  CHECK(eval("order.paid"));
  CHECK(eval("order.items"));
  CHECK(eval("order.status"));
  CHECK(eval("customer.situations"));
  CHECK_FALSE(eval("customer.name"));
  CHECK_FALSE(eval("customer.tags"));
  CHECK_FALSE(eval("order.nothing"));
  CHECK_FALSE(eval("0"));
}

TEST_CASE("paths() lists the fields read, once each, in order") {
  Diagnostics errors;
  auto e = Expression::parse("order.status == 'x' || customer.opt_out || order.status in ['y'] || exists(order.z)",
                             SourceSpot{"r.toml", 1, 1}, errors);
  REQUIRE(e);
  CHECK(e->paths() == std::vector<std::string>{"order.status", "customer.opt_out", "order.z"});
  CHECK(e->text() == "order.status == 'x' || customer.opt_out || order.status in ['y'] || exists(order.z)");
}

TEST_CASE("every mistake is reported once, at its column, with what would be right") {
  CHECK(error("") == "r.toml:7:9: empty condition");
  CHECK(error("   ") == "r.toml:7:9: empty condition");
  CHECK(error("order.status ==") == "r.toml:7:24: expected a value after '==', found end of condition");
  CHECK(error("order.paid && ") == "r.toml:7:23: expected a value after '&&', found end of condition");
  CHECK(error("order.paid || )") == "r.toml:7:23: expected a value after '||', found ')'");
  CHECK(error("!") == "r.toml:7:10: expected a value after '!', found end of condition");
  CHECK(error("order.status == 'cancelled") == "r.toml:7:25: unterminated string starting here");
  CHECK(error("order.status # 1") == "r.toml:7:22: unexpected character '#'");
  CHECK(error("order.status in ['a', 'b'") ==
        "r.toml:7:34: expected ']' to close the list started at column 17, found end of condition");
  CHECK(error("order.status in ['a', order.x]") ==
        "r.toml:7:31: list elements must be literals ('text', numbers, true, false, null), found 'order'");
  CHECK(error("(order.paid || order.x") ==
        "r.toml:7:31: expected ')' to close the '(' at column 1, found end of condition");
  CHECK(error("order.status in 'a'") == "r.toml:7:25: 'in' needs a list like ['a', 'b'] or a field path, found 'a'");
  CHECK(error("exists order.x") == "r.toml:7:16: exists() takes a field path, e.g. exists(order.cancel_reason)");
  CHECK(error("exists('x')") == "r.toml:7:16: exists() takes a field path, e.g. exists(order.cancel_reason)");
  CHECK(error("exists(order.x") == "r.toml:7:23: expected ')' after the path in exists(), found end of condition");
  CHECK(error("order == 1") == "r.toml:7:9: a path needs a field after the entity, e.g. order.status");
  CHECK(error("order. == 1") == "r.toml:7:16: expected a field name after '.', found '=='");
  CHECK(error("ordr.status == 1") ==
        "r.toml:7:9: unknown entity 'ordr' (expected one of customer, order, shipment, subscription, payment)");
  CHECK(error("order.status = 'x'") == "r.toml:7:22: '=' is not an operator; use '==' to compare");
  CHECK(error("order.paid & order.x") == "r.toml:7:20: '&' is not an operator; use '&&'");
  CHECK(error("order.paid | order.x") == "r.toml:7:20: '|' is not an operator; use '||'");
  CHECK(error("order.paid order.x") == "r.toml:7:20: unexpected 'order' after the end of the condition");
  CHECK(error("== 3") == "r.toml:7:9: expected a value, a field path or '(', found '=='");
  CHECK(error(std::string(100, '(') + "1") == "r.toml:7:74: the condition is nested too deeply");
}

TEST_CASE("a mistake on a later line of a multi-line condition is placed on that line") {
  Diagnostics errors;
  CHECK_FALSE(Expression::parse("order.paid &&\n  order.x = 1", SourceSpot{"r.toml", 7, 9}, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].str() == "r.toml:8:11: '=' is not an operator; use '==' to compare");
}
