#include "rules/expression.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace tactd {
namespace {

const nlohmann::json sample_scope = {
    {"order",
     {{"status", "cancelled"},
      {"total", 31.4},
      {"items", 3},
      {"paid", true},
      {"refunded", false},
      {"cancel_reason", "kitchen overloaded"},
      {"merchant", "Café Zuid"},
      {"promised_by", "2026-11-20T12:00:00+01:00"},
      {"address", {{"city", "Utrecht"}}},
      {"coupon", nullptr}}},
    {"shipment", {{"eta", "2026-11-20T11:30:00Z"}, {"status", "in_transit"}}},
    {"customer",
     {{"prefers", "sms"},
      {"opt_out", false},
      {"situations", {"payment_difficulty"}},
      {"lucky_numbers", {7, 3.5}},
      {"name", ""},
      {"tags", nlohmann::json::array()},
      {"balance", 0},
      {"big", 18446744073709551615ULL},
      {"precise", 9007199254740993LL}}},
};

// Parses `text` (it must be valid) and evaluates it against `scope`.
bool eval(const std::string& text, const nlohmann::json& scope = sample_scope) {
  Diagnostics errors;
  auto expression = Expression::parse(text, SourceSpot{"rules/orders.toml", 1, 1}, errors);
  INFO(text);
  INFO((errors.empty() ? std::string() : errors[0].str()));
  REQUIRE(expression);
  REQUIRE(errors.empty());
  return expression->test(scope);
}

// Parses `text` as if it started at rules/orders.toml:7:9 and returns the
// one diagnostic it must produce.
std::string error(const std::string& text) {
  Diagnostics errors;
  auto expression = Expression::parse(text, SourceSpot{"rules/orders.toml", 7, 9}, errors);
  INFO(text);
  CHECK_FALSE(expression);
  REQUIRE(errors.size() == 1);
  return errors[0].str();
}

std::vector<std::string> paths_of(const std::string& text) {
  Diagnostics errors;
  auto expression = Expression::parse(text, SourceSpot{"rules/orders.toml", 1, 1}, errors);
  REQUIRE(expression);
  return expression->paths();
}

}  // namespace

TEST_CASE("== and != compare text, numbers, booleans and null") {
  CHECK(eval("order.status == 'cancelled'"));
  CHECK(eval("order.status == \"cancelled\""));
  CHECK_FALSE(eval("order.status != 'cancelled'"));
  CHECK(eval("order.status != 'placed'"));
  CHECK(eval("order.paid == true"));
  CHECK(eval("customer.opt_out == false"));
  CHECK(eval("order.coupon == null"));
  CHECK(eval("order.merchant == 'Café Zuid'"));
  CHECK(eval("\"it's\" == \"it's\""));
  CHECK(eval("customer.situations == customer.situations"));
}

TEST_CASE("<, <=, > and >= order numbers") {
  CHECK(eval("order.total > 30"));
  CHECK(eval("order.total >= 31.4"));
  CHECK(eval("order.total <= 31.4"));
  CHECK_FALSE(eval("order.total < 31.4"));
  CHECK(eval("order.total < 31.5"));
  CHECK(eval("order.total > -5"));
  CHECK(eval("order.total > -5.25"));
  CHECK(eval("order.items >= 3"));
  CHECK_FALSE(eval("order.items > 3"));
  CHECK(eval("1e3 == 1000"));
  CHECK(eval("1e-3 < 0.01"));
  CHECK(eval("2.5e+1 == 25"));
}

TEST_CASE("numbers compare by value whether written as integers or with a fraction") {
  CHECK(eval("order.items == 3.0"));
  CHECK(eval("order.items == 3"));
  CHECK(eval("1 == 1.0"));
  CHECK(eval("3.0 in [1, 3]"));
  CHECK(eval("3.5 in customer.lucky_numbers"));
  CHECK(eval("7.0 in customer.lucky_numbers"));
  CHECK_FALSE(eval("order.items == 3.01"));
}

TEST_CASE("large integers compare exactly, signed or unsigned") {
  CHECK(eval("customer.precise == 9007199254740993"));
  CHECK_FALSE(eval("customer.precise == 9007199254740992"));
  CHECK(eval("customer.big > 9223372036854775807"));
  CHECK(eval("customer.big > -1"));
  CHECK(eval("customer.big != -1"));
  CHECK(eval("order.items < 99999999999999999999"));  // too large for an integer: a double
}

TEST_CASE("a missing field or entity is null") {
  CHECK(eval("order.nothing == null"));
  CHECK(eval("payment.status == null"));
  CHECK(eval("order.status.deeper == null"));
  CHECK(eval("order.address.city == 'Utrecht'"));
  CHECK_FALSE(eval("order.nothing == 'x'"));
  CHECK_FALSE(eval("order.nothing > 3"));
  CHECK(eval("order.nothing != 'x'"));
  CHECK(eval("order.status == null", nlohmann::json{{"order", "not an object"}}));
  CHECK(eval("order.status == null", nlohmann::json::array()));
  CHECK(eval("order.status == null", nlohmann::json()));
}

TEST_CASE("ordering values of different types is false, both ways round") {
  CHECK_FALSE(eval("order.total > 'a'"));
  CHECK_FALSE(eval("order.total < 'a'"));
  CHECK_FALSE(eval("order.status < 3"));
  CHECK_FALSE(eval("order.status >= 3"));
  CHECK_FALSE(eval("order.paid > false"));
  CHECK_FALSE(eval("order.paid >= true"));
  CHECK_FALSE(eval("null <= null"));
  CHECK_FALSE(eval("customer.situations > customer.tags"));
  CHECK_FALSE(eval("order.items == '3'"));
  CHECK(eval("order.items != '3'"));
  CHECK_FALSE(eval("order.paid == 1"));
}

TEST_CASE("text that is not a date-time compares lexically") {
  CHECK(eval("order.status > 'a'"));
  CHECK(eval("'apple' < 'banana'"));
  CHECK(eval("'Zebra' < 'apple'"));  // byte order: capitals first
  CHECK(eval("'abc' <= 'abc'"));
  CHECK(eval("'abc' >= 'ab'"));
  CHECK(eval("'10' < '9'"));
  // A date-time against a plain date or other text: lexical.
  CHECK(eval("'2026-11-20T12:00:00+01:00' > '2026-11-20'"));
  CHECK(eval("order.promised_by < 'soon'"));
}

TEST_CASE("RFC 3339 date-times compare as instants across offsets") {
  // 12:00+01:00 is 11:00Z, before 11:30Z, though "2026-11-20T12" > "2026-11-20T11" as text.
  CHECK(eval("shipment.eta > order.promised_by"));
  CHECK_FALSE(eval("shipment.eta <= order.promised_by"));
  CHECK(eval("'2026-11-20T12:30:00+01:00' > '2026-11-20T11:00:00Z'"));
  CHECK_FALSE(eval("'2026-11-20T10:30:00+01:00' > '2026-11-20T11:00:00Z'"));
  CHECK(eval("'2026-11-20T12:00:00+01:00' <= '2026-11-20T11:00:00Z'"));
  CHECK(eval("'2026-11-20T12:00:00+01:00' >= '2026-11-20T11:00:00Z'"));
  CHECK(eval("'2026-11-20T11:00:00.250Z' > '2026-11-20T11:00:00Z'"));
  CHECK(eval("'2026-11-20T23:30:00-02:00' > '2026-11-21T00:30:00Z'"));
  // == compares the values as written, as for any JSON text.
  CHECK(eval("order.promised_by == '2026-11-20T12:00:00+01:00'"));
  CHECK_FALSE(eval("order.promised_by == '2026-11-20T11:00:00Z'"));
}

TEST_CASE("&& binds tighter than ||") {
  CHECK(eval("order.paid || order.total > 100 && false"));
  CHECK_FALSE(eval("(order.paid || order.total > 100) && false"));
  CHECK(eval("false && order.paid || true"));
  CHECK_FALSE(eval("false && (order.paid || true)"));
  CHECK(eval("order.paid && order.items == 3 && order.status == 'cancelled'"));
  CHECK_FALSE(eval("order.paid && order.items == 3 && order.status == 'placed'"));
  CHECK(eval("false || false || order.paid"));
  CHECK_FALSE(eval("false || false || order.refunded"));
}

TEST_CASE("! applies to the comparison or value after it") {
  CHECK(eval("!customer.opt_out"));
  CHECK(eval("!!order.paid"));
  CHECK_FALSE(eval("!order.status == 'cancelled'"));  // !(order.status == 'cancelled')
  CHECK(eval("!order.refunded && order.paid"));
  CHECK_FALSE(eval("!(order.refunded || order.paid)"));
  CHECK(eval("!order.nothing"));
}

TEST_CASE("parentheses group and may nest") {
  CHECK(eval("((order.paid))"));
  CHECK(eval("(order.items == 3) == true"));
  CHECK(eval("(order.status == 'x' || (order.items > 2 && (order.paid)))"));
  CHECK(eval(std::string(64, '(') + "true" + std::string(64, ')')));
}

TEST_CASE("in a list of literals is true when the value equals an element") {
  CHECK(eval("order.status in ['placed', 'cancelled']"));
  CHECK(eval("order.status in [\"cancelled\"]"));
  CHECK_FALSE(eval("order.status in ['placed']"));
  CHECK_FALSE(eval("order.status in []"));
  CHECK(eval("order.items in [1, 2, 3]"));
  CHECK(eval("order.nothing in [null, 'x']"));
  CHECK(eval("order.paid in [true]"));
  CHECK_FALSE(eval("order.items in ['3']"));
  CHECK(eval("!(order.status in ['placed'])"));
}

TEST_CASE("in a field path is true when the field is a list containing the value") {
  CHECK(eval("'payment_difficulty' in customer.situations"));
  CHECK_FALSE(eval("'vip' in customer.situations"));
  CHECK_FALSE(eval("'s' in customer.prefers"));  // text is not a list
  CHECK_FALSE(eval("'x' in customer.missing"));
  CHECK_FALSE(eval("'x' in customer.tags"));
  CHECK(eval("order.status in order.statuses", {{"order", {{"status", "a"}, {"statuses", {"b", "a"}}}}}));
}

TEST_CASE("exists() is true for fields that are present and not null") {
  CHECK(eval("exists(order.cancel_reason)"));
  CHECK(eval("exists(customer.name)"));  // present though empty
  CHECK(eval("exists(order.refunded)"));
  CHECK(eval("exists(order.address.city)"));
  CHECK_FALSE(eval("exists(order.refund)"));
  CHECK_FALSE(eval("exists(order.coupon)"));
  CHECK_FALSE(eval("exists(subscription.price)"));
  CHECK(eval("order.status == 'cancelled' && exists(order.cancel_reason)"));
  CHECK(eval("!exists(order.refund)"));
}

TEST_CASE("a bare value is true when it is true, a non-zero number, or non-empty text or list") {
  CHECK(eval("order.paid"));
  CHECK_FALSE(eval("order.refunded"));
  CHECK(eval("order.items"));
  CHECK(eval("order.total"));
  CHECK_FALSE(eval("customer.balance"));
  CHECK(eval("-1"));
  CHECK_FALSE(eval("0"));
  CHECK_FALSE(eval("0.0"));
  CHECK(eval("order.status"));
  CHECK_FALSE(eval("customer.name"));
  CHECK(eval("customer.situations"));
  CHECK_FALSE(eval("customer.tags"));
  CHECK_FALSE(eval("order.nothing"));
  CHECK_FALSE(eval("null"));
  CHECK(eval("true"));
  CHECK_FALSE(eval("false"));
  CHECK_FALSE(eval("order.address"));  // an object is none of those
}

TEST_CASE("whitespace, tabs and newlines between tokens are ignored") {
  CHECK(eval("  order.status=='cancelled'&&order.items>=3  "));
  CHECK(eval("order.paid\t&&\n  order.items == 3"));
}

TEST_CASE("paths() lists the fields read, once each, in order of first appearance") {
  CHECK(paths_of("order.status == 'x' || customer.opt_out || order.status in ['y'] || exists(order.z)") ==
        std::vector<std::string>{"order.status", "customer.opt_out", "order.z"});
  CHECK(paths_of("'vip' in customer.situations && shipment.eta > order.promised_by") ==
        std::vector<std::string>{"customer.situations", "shipment.eta", "order.promised_by"});
  CHECK(paths_of("order.address.city == 'Utrecht'") == std::vector<std::string>{"order.address.city"});
  CHECK(paths_of("true").empty());
}

TEST_CASE("a parsed expression keeps its text and can be copied") {
  Diagnostics errors;
  auto parsed = Expression::parse("order.paid && customer.opt_out", SourceSpot{"r.toml", 1, 1}, errors);
  REQUIRE(parsed);
  const Expression copy = *parsed;
  parsed.reset();
  CHECK(copy.text() == "order.paid && customer.opt_out");
  CHECK(copy.paths() == std::vector<std::string>{"order.paid", "customer.opt_out"});
  CHECK_FALSE(copy.test(sample_scope));
  CHECK(copy.test({{"order", {{"paid", true}}}, {"customer", {{"opt_out", true}}}}));
}

TEST_CASE("an expression that was never parsed holds for nothing and reads nothing") {
  const Expression none;
  CHECK_FALSE(none.test(sample_scope));
  CHECK(none.paths().empty());
}

TEST_CASE("an empty condition is an error") {
  CHECK(error("") == "rules/orders.toml:7:9: empty condition");
  CHECK(error("   ") == "rules/orders.toml:7:9: empty condition");
}

TEST_CASE("a missing value is reported after the operator that needs it") {
  CHECK(error("order.status ==") == "rules/orders.toml:7:24: expected a value after '==', found end of condition");
  CHECK(error("order.items >= ]") == "rules/orders.toml:7:24: expected a value after '>=', found ']'");
  CHECK(error("order.paid && ") == "rules/orders.toml:7:23: expected a value after '&&', found end of condition");
  CHECK(error("order.paid || )") == "rules/orders.toml:7:23: expected a value after '||', found ')'");
  CHECK(error("order.paid && || order.x") == "rules/orders.toml:7:23: expected a value after '&&', found '||'");
  CHECK(error("!") == "rules/orders.toml:7:10: expected a value after '!', found end of condition");
  CHECK(error("()") == "rules/orders.toml:7:10: expected a value after '(', found ')'");
  CHECK(error("== 3") == "rules/orders.toml:7:9: expected a value, a field path or '(', found '=='");
  CHECK(error("in ['a']") == "rules/orders.toml:7:9: expected a value, a field path or '(', found 'in'");
}

TEST_CASE("an unterminated string is reported where it starts") {
  CHECK(error("order.status == 'cancelled") == "rules/orders.toml:7:25: unterminated string starting here");
  CHECK(error("order.status == \"cancelled'") == "rules/orders.toml:7:25: unterminated string starting here");
}

TEST_CASE("a character outside the language is named") {
  CHECK(error("order.status # 1") == "rules/orders.toml:7:22: unexpected character '#'");
  CHECK(error("order.total - 1") == "rules/orders.toml:7:21: unexpected character '-'");
  // Columns count characters: 'é' is two bytes but one column.
  CHECK(error("order.merchant == 'Café' §") == "rules/orders.toml:7:34: unexpected character '§'");
  CHECK(error("order.status == \u2018cancelled\u2019") ==
        "rules/orders.toml:7:25: unexpected character '\u2018'; quote text with ' or \"");
  CHECK(error("order.paid\x01") == "rules/orders.toml:7:19: unexpected control character U+0001");
}

TEST_CASE("a malformed number is named") {
  CHECK(error("order.total > 3.5.1") ==
        "rules/orders.toml:7:23: '3.5.1' is not a number (write numbers like 3, -2 or 23.50)");
  CHECK(error("order.items == 3abc") ==
        "rules/orders.toml:7:24: '3abc' is not a number (write numbers like 3, -2 or 23.50)");
  CHECK(error("order.total < 1e400") == "rules/orders.toml:7:23: '1e400' is out of range for a number");
}

TEST_CASE("operators from other languages get the right spelling") {
  CHECK(error("order.status = 'x'") == "rules/orders.toml:7:22: '=' is not an operator; use '==' to compare");
  CHECK(error("order.status === 'x'") == "rules/orders.toml:7:22: '===' is not an operator; use '==' to compare");
  CHECK(error("order.status !== 'x'") == "rules/orders.toml:7:22: '!==' is not an operator; use '!=' to compare");
  CHECK(error("order.paid & order.x") == "rules/orders.toml:7:20: '&' is not an operator; use '&&'");
  CHECK(error("order.paid | order.x") == "rules/orders.toml:7:20: '|' is not an operator; use '||'");
  CHECK(error("order.paid and order.x") == "rules/orders.toml:7:20: 'and' is not an operator; use '&&'");
  CHECK(error("order.paid or order.x") == "rules/orders.toml:7:20: 'or' is not an operator; use '||'");
  CHECK(error("and order.x") == "rules/orders.toml:7:9: 'and' is not an operator; use '&&'");
  CHECK(error("or order.x") == "rules/orders.toml:7:9: 'or' is not an operator; use '||'");
  CHECK(error("not order.paid") == "rules/orders.toml:7:9: 'not' is not an operator; use '!'");
}

TEST_CASE("an unclosed list or parenthesis names where it was opened") {
  CHECK(error("order.status in ['a', 'b'") ==
        "rules/orders.toml:7:34: expected ']' to close the list started at column 25, found end of condition");
  CHECK(error("order.status in ['a' 'b']") ==
        "rules/orders.toml:7:30: expected ']' to close the list started at column 25, found 'b'");
  CHECK(error("(order.paid || order.x") ==
        "rules/orders.toml:7:31: expected ')' to close the '(' at column 9, found end of condition");
  CHECK(error("(order.paid ]") == "rules/orders.toml:7:21: expected ')' to close the '(' at column 9, found ']'");
  CHECK(error("order.paid)") == "rules/orders.toml:7:19: ')' has no matching '('");
}

TEST_CASE("list elements must be literals") {
  CHECK(error("order.status in ['a', order.x]") ==
        "rules/orders.toml:7:31: list elements must be literals ('text', numbers, true, false, null), found 'order'");
  CHECK(error("order.status in ['a',]") ==
        "rules/orders.toml:7:30: list elements must be literals ('text', numbers, true, false, null), found ']'");
  CHECK(error("order.status in [['a']]") ==
        "rules/orders.toml:7:26: list elements must be literals ('text', numbers, true, false, null), found '['");
}

TEST_CASE("in needs a list or a field path") {
  CHECK(error("order.status in 'a'") ==
        "rules/orders.toml:7:25: 'in' needs a list like ['a', 'b'] or a field path, found 'a'");
  CHECK(error("order.status in") ==
        "rules/orders.toml:7:24: 'in' needs a list like ['a', 'b'] or a field path, found end of condition");
  CHECK(error("order.status in null") ==
        "rules/orders.toml:7:25: 'in' needs a list like ['a', 'b'] or a field path, found 'null'");
}

TEST_CASE("exists() needs parentheses around one field path") {
  CHECK(error("exists order.x") ==
        "rules/orders.toml:7:16: exists() takes a field path, e.g. exists(order.cancel_reason)");
  CHECK(error("exists('x')") ==
        "rules/orders.toml:7:16: exists() takes a field path, e.g. exists(order.cancel_reason)");
  CHECK(error("exists()") == "rules/orders.toml:7:16: exists() takes a field path, e.g. exists(order.cancel_reason)");
  CHECK(error("exists(order.x") ==
        "rules/orders.toml:7:23: expected ')' to close exists(order.x), found end of condition");
  CHECK(error("exists(order.x, order.y)") ==
        "rules/orders.toml:7:23: expected ')' to close exists(order.x), found ','");
  CHECK(error("exists(order)") == "rules/orders.toml:7:16: a path needs a field after the entity, e.g. order.status");
}

TEST_CASE("a path starts with an entity type and names a field") {
  CHECK(error("order == 1") == "rules/orders.toml:7:9: a path needs a field after the entity, e.g. order.status");
  CHECK(error("customer") == "rules/orders.toml:7:9: a path needs a field after the entity, e.g. customer.name");
  CHECK(error("order. == 1") == "rules/orders.toml:7:16: expected a field name after '.', found '=='");
  CHECK(error("order.items.0") == "rules/orders.toml:7:21: expected a field name after '.', found '0'");
  CHECK(error("ordr.status == 1") ==
        "rules/orders.toml:7:9: unknown entity 'ordr' in 'ordr.status' (expected one of customer, order, shipment, "
        "subscription, payment)");
  CHECK(error("order.status in Order.states") ==
        "rules/orders.toml:7:25: unknown entity 'Order' in 'Order.states' (expected one of customer, order, shipment, "
        "subscription, payment)");
  CHECK(error("order.status == cancelled") ==
        "rules/orders.toml:7:25: 'cancelled' is neither a value nor a field path; quote text, as in 'cancelled', or "
        "name a field, as in order.status");
}

TEST_CASE("text after a complete condition is reported") {
  CHECK(error("order.paid order.x") == "rules/orders.toml:7:20: unexpected 'order' after the end of the condition");
  CHECK(error("order.paid 'x'") == "rules/orders.toml:7:20: unexpected 'x' after the end of the condition");
  CHECK(error("1 < order.total < 10") ==
        "rules/orders.toml:7:25: comparisons do not chain; join them with '&&', e.g. a < b && b < c");
  CHECK(error("order.status == 'a' in ['a']") ==
        "rules/orders.toml:7:29: comparisons do not chain; join them with '&&', e.g. a < b && b < c");
}

TEST_CASE("a long token is shortened when quoted back") {
  const std::string long_text = "'" + std::string(60, 'a') + "'";
  CHECK(error("order.status in " + long_text) ==
        "rules/orders.toml:7:25: 'in' needs a list like ['a', 'b'] or a "
        "field path, found '" +
            std::string(39, 'a') + "...");
}

TEST_CASE("nesting deeper than 64 levels is refused") {
  CHECK(error(std::string(100, '(') + "1") ==
        "rules/orders.toml:7:74: the condition is nested too deeply (more than 64 levels of '(' and '!')");
  CHECK(error(std::string(70, '!') + "true") ==
        "rules/orders.toml:7:74: the condition is nested too deeply (more than 64 levels of '(' and '!')");
}

TEST_CASE("only the first mistake is reported") {
  CHECK(error("order.status = 'x' && ordr.y &") ==
        "rules/orders.toml:7:22: '=' is not an operator; use '==' to compare");
  CHECK(error("ordr.status == 'unterminated") ==
        "rules/orders.toml:7:9: unknown entity 'ordr' in 'ordr.status' (expected one of customer, order, shipment, "
        "subscription, payment)");
}

TEST_CASE("a diagnostic is appended to those already found") {
  Diagnostics errors{Diagnostic{"rules/a.toml", 1, 1, "earlier"}};
  CHECK_FALSE(Expression::parse("order.x ==", SourceSpot{"rules/b.toml", 3, 10}, errors));
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].message == "earlier");
  CHECK(errors[1].str() == "rules/b.toml:3:20: expected a value after '==', found end of condition");
}

TEST_CASE("a mistake on a later line of a multi-line condition is placed on that line") {
  CHECK(error("order.paid &&\n  order.x = 1") == "rules/orders.toml:8:11: '=' is not an operator; use '==' to compare");
  CHECK(error("order.x in\n  ['a'") ==
        "rules/orders.toml:8:7: expected ']' to close the list started at line 8, column 3, found end of condition");
}

}  // namespace tactd
