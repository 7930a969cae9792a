// Conditions over entity fields: the `when` language of rule files.
//
//   order.status == 'cancelled' && exists(order.cancel_reason)
//   customer.prefers in ['sms', 'email'] || !customer.opt_out
//   'payment_difficulty' in customer.situations
//   shipment.eta > order.promised_by
//
// Grammar (lowest precedence first):
//   expr       := or
//   or         := and ('||' and)*
//   and        := unary ('&&' unary)*
//   unary      := '!' unary | comparison
//   comparison := operand (('=='|'!='|'<'|'<='|'>'|'>=') operand | 'in' (list | path))?
//   operand    := literal | path | 'exists' '(' path ')' | '(' expr ')'
//   list       := '[' (literal (',' literal)*)? ']'
//   literal    := 'string' | "string" | number | true | false | null
//   path       := root ('.' name)*      root is an entity type: customer,
//                                       order, shipment, subscription, payment
//
// Semantics: a missing field is null. `==`/`!=` compare JSON values (numbers
// by value). `<`, `<=`, `>`, `>=` compare numbers with numbers, and strings
// with strings -- as instants when both are RFC 3339 date-times, else
// lexically; any other pair is false. `x in [..]` is true when x equals an
// element; `x in path` when the field is a list containing x. A bare operand
// is true when it is true, a non-zero number, a non-empty string or list.
//
// Expressions are parsed once, when rules load; evaluating never fails.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/diagnostic.h"

namespace tactd {

// Equality as `==` sees it: numbers by value (1 == 1.0, 64-bit integers
// exactly), everything else as JSON values. Trigger targets use it too, so
// `on` and `when` agree on what equal means.
bool same_value(const nlohmann::json& a, const nlohmann::json& b);

// Where an expression's text starts in its file, so that errors point at the
// exact character: `file:line:(column + offset)`.
struct SourceSpot {
  std::string file;
  int line = 1;
  int column = 1;
};

class Expression {
 public:
  // Parses `text`. On error returns nullopt and appends diagnostics such as
  // "rules/orders.toml:7:24: expected a value after '==', found end of condition".
  static std::optional<Expression> parse(std::string_view text, const SourceSpot& where, Diagnostics& errors);

  // Evaluates against `scope`, a JSON object keyed by entity type
  // ({"order": {...fields}, "customer": {...}}). Absent entities and
  // fields are null.
  bool test(const nlohmann::json& scope) const;

  // The field paths the expression reads, e.g. {"order.status", "customer.opt_out"}.
  const std::vector<std::string>& paths() const;
  const std::string& text() const;

  struct Node;  // private to expression.cpp

 private:
  std::shared_ptr<const Node> root_;
  std::shared_ptr<const std::vector<std::string>> paths_;
  std::string text_;
};

}  // namespace tactd
