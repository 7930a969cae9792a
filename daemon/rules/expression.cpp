#include "rules/expression.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <variant>

#include "model/entity.h"
#include "model/time.h"

namespace tactd {

// An AST node. Leaves are literals, paths and exists(); inner nodes are
// operators over `children`.
struct Expression::Node {
  enum class Op { kLiteral, kPath, kExists, kNot, kAnd, kOr, kEq, kNe, kLt, kLe, kGt, kGe, kInList, kInPath };
  Op op = Op::kLiteral;
  nlohmann::json literal;         // kLiteral; kInList: the list
  std::vector<std::string> path;  // kPath, kExists, kInPath
  std::vector<std::shared_ptr<const Node>> children;
};

namespace {

using Node = Expression::Node;
using Op = Node::Op;

constexpr size_t kMaxDepth = 64;  // nesting of parentheses and '!'

struct Token {
  enum class Type { kEnd, kName, kString, kNumber, kSymbol };
  Type type = Type::kEnd;
  std::string text;  // name, symbol, or the decoded string
  double number = 0;
  size_t offset = 0;  // in the expression text
};

// Thrown inside the parser only; turned into one Diagnostic.
struct ParseError {
  size_t offset;
  std::string message;
};

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  Token next() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    Token token;
    token.offset = pos_;
    if (pos_ >= text_.size()) return token;
    const char c = text_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = pos_;
      while (end < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_' || text_[end] == '-'))
        ++end;
      token.type = Token::Type::kName;
      token.text = std::string(text_.substr(pos_, end - pos_));
      pos_ = end;
      return token;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && pos_ + 1 < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_ + 1])))) {
      auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), token.number);
      if (ec != std::errc{}) throw ParseError{pos_, "malformed number"};
      token.type = Token::Type::kNumber;
      pos_ = static_cast<size_t>(end - text_.data());
      return token;
    }
    if (c == '\'' || c == '"') {
      const size_t close = text_.find(c, pos_ + 1);
      if (close == std::string_view::npos) throw ParseError{pos_, "unterminated string starting here"};
      token.type = Token::Type::kString;
      token.text = std::string(text_.substr(pos_ + 1, close - pos_ - 1));
      pos_ = close + 1;
      return token;
    }
    for (std::string_view symbol : {"==", "!=", "<=", ">=", "&&", "||"}) {
      if (text_.substr(pos_, 2) == symbol) {
        token.type = Token::Type::kSymbol;
        token.text = std::string(symbol);
        pos_ += 2;
        return token;
      }
    }
    switch (c) {
      case '=':
        throw ParseError{pos_, "'=' is not an operator; use '==' to compare"};
      case '&':
        throw ParseError{pos_, "'&' is not an operator; use '&&'"};
      case '|':
        throw ParseError{pos_, "'|' is not an operator; use '||'"};
      case '<':
      case '>':
      case '!':
      case '(':
      case ')':
      case '[':
      case ']':
      case ',':
      case '.':
        token.type = Token::Type::kSymbol;
        token.text = std::string(1, c);
        ++pos_;
        return token;
      default:
        throw ParseError{pos_, "unexpected character '" + std::string(1, c) + "'"};
    }
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

std::string describe(const Token& token) {
  switch (token.type) {
    case Token::Type::kEnd:
      return "end of condition";
    case Token::Type::kString:
      return "'" + token.text + "'";
    case Token::Type::kNumber:
      return "a number";
    default:
      return "'" + token.text + "'";
  }
}

class Parser {
 public:
  Parser(std::string_view text, std::vector<std::string>& paths) : lexer_(text), paths_(paths) { advance(); }

  std::shared_ptr<const Node> parse() {
    if (current_.type == Token::Type::kEnd) throw ParseError{0, "empty condition"};
    auto root = parse_or(0);
    if (current_.type != Token::Type::kEnd)
      throw ParseError{current_.offset, "unexpected " + describe(current_) + " after the end of the condition"};
    return root;
  }

 private:
  void advance() { current_ = lexer_.next(); }
  bool at_symbol(std::string_view s) const { return current_.type == Token::Type::kSymbol && current_.text == s; }
  bool at_name(std::string_view s) const { return current_.type == Token::Type::kName && current_.text == s; }

  static std::shared_ptr<const Node> make(Op op, std::vector<std::shared_ptr<const Node>> children) {
    auto node = std::make_shared<Node>();
    node->op = op;
    node->children = std::move(children);
    return node;
  }

  std::shared_ptr<const Node> parse_or(size_t depth) {
    auto left = parse_and(depth);
    while (at_symbol("||")) {
      const Token op = current_;
      advance();
      expect_operand(op);
      left = make(Op::kOr, {left, parse_and(depth)});
    }
    return left;
  }

  std::shared_ptr<const Node> parse_and(size_t depth) {
    auto left = parse_unary(depth);
    while (at_symbol("&&")) {
      const Token op = current_;
      advance();
      expect_operand(op);
      left = make(Op::kAnd, {left, parse_unary(depth)});
    }
    return left;
  }

  std::shared_ptr<const Node> parse_unary(size_t depth) {
    if (depth > kMaxDepth) throw ParseError{current_.offset, "the condition is nested too deeply"};
    if (at_symbol("!")) {
      const Token op = current_;
      advance();
      expect_operand(op);
      return make(Op::kNot, {parse_unary(depth + 1)});
    }
    return parse_comparison(depth);
  }

  // After a binary or unary operator there must be something to apply it to.
  void expect_operand(const Token& op) {
    if (current_.type == Token::Type::kEnd || at_symbol(")") || at_symbol("]") || at_symbol(",") || at_symbol("&&") ||
        at_symbol("||") || at_symbol("==") || at_symbol("!=") || at_symbol("<") || at_symbol("<=") || at_symbol(">") ||
        at_symbol(">="))
      throw ParseError{current_.offset, "expected a value after '" + op.text + "', found " + describe(current_)};
  }

  std::shared_ptr<const Node> parse_comparison(size_t depth) {
    auto left = parse_operand(depth);
    static constexpr std::pair<std::string_view, Op> kComparisons[] = {
        {"==", Op::kEq}, {"!=", Op::kNe}, {"<", Op::kLt}, {"<=", Op::kLe}, {">", Op::kGt}, {">=", Op::kGe}};
    for (const auto& [symbol, op] : kComparisons) {
      if (!at_symbol(symbol)) continue;
      const Token token = current_;
      advance();
      expect_operand(token);
      return make(op, {left, parse_operand(depth)});
    }
    if (at_name("in")) {
      const Token token = current_;
      advance();
      if (at_symbol("[")) return parse_list(left);
      if (current_.type == Token::Type::kName && current_.text != "true" && current_.text != "false" &&
          current_.text != "null" && current_.text != "exists") {
        auto node = std::make_shared<Node>();
        node->op = Op::kInPath;
        node->path = parse_path();
        node->children = {left};
        return node;
      }
      throw ParseError{current_.offset,
                       "'in' needs a list like ['a', 'b'] or a field path, found " + describe(current_)};
    }
    return left;
  }

  std::shared_ptr<const Node> parse_list(std::shared_ptr<const Node> left) {
    const size_t open = current_.offset;
    advance();
    auto node = std::make_shared<Node>();
    node->op = Op::kInList;
    node->literal = nlohmann::json::array();
    node->children = {std::move(left)};
    if (at_symbol("]")) {
      advance();
      return node;
    }
    while (true) {
      auto value = literal_of(current_);
      if (!value)
        throw ParseError{
            current_.offset,
            "list elements must be literals ('text', numbers, true, false, null), found " + describe(current_)};
      node->literal.push_back(*value);
      advance();
      if (at_symbol(",")) {
        advance();
        continue;
      }
      if (at_symbol("]")) {
        advance();
        return node;
      }
      throw ParseError{current_.offset, "expected ']' to close the list started at column " + std::to_string(open + 1) +
                                            ", found " + describe(current_)};
    }
  }

  static std::optional<nlohmann::json> literal_of(const Token& token) {
    switch (token.type) {
      case Token::Type::kString:
        return nlohmann::json(token.text);
      case Token::Type::kNumber:
        return nlohmann::json(token.number);
      case Token::Type::kName:
        if (token.text == "true") return nlohmann::json(true);
        if (token.text == "false") return nlohmann::json(false);
        if (token.text == "null") return nlohmann::json(nullptr);
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }

  std::shared_ptr<const Node> parse_operand(size_t depth) {
    if (auto value = literal_of(current_)) {
      auto node = std::make_shared<Node>();
      node->literal = *value;
      advance();
      return node;
    }
    if (at_symbol("(")) {
      const size_t open = current_.offset;
      advance();
      auto inner = parse_or(depth + 1);
      if (!at_symbol(")"))
        throw ParseError{current_.offset, "expected ')' to close the '(' at column " + std::to_string(open + 1) +
                                              ", found " + describe(current_)};
      advance();
      return inner;
    }
    if (at_name("exists")) {
      advance();
      if (!at_symbol("("))
        throw ParseError{current_.offset, "exists() takes a field path, e.g. exists(order.cancel_reason)"};
      advance();
      if (current_.type != Token::Type::kName)
        throw ParseError{current_.offset, "exists() takes a field path, e.g. exists(order.cancel_reason)"};
      auto node = std::make_shared<Node>();
      node->op = Op::kExists;
      node->path = parse_path();
      if (!at_symbol(")"))
        throw ParseError{current_.offset, "expected ')' after the path in exists(), found " + describe(current_)};
      advance();
      return node;
    }
    if (current_.type == Token::Type::kName) {
      auto node = std::make_shared<Node>();
      node->op = Op::kPath;
      node->path = parse_path();
      return node;
    }
    throw ParseError{current_.offset, "expected a value, a field path or '(', found " + describe(current_)};
  }

  std::vector<std::string> parse_path() {
    const Token root = current_;
    if (!parse_entity_type(root.text))
      throw ParseError{root.offset,
                       "unknown entity '" + root.text + "' (expected one of " + std::string(entity_type_list()) + ")"};
    std::vector<std::string> path{root.text};
    advance();
    while (at_symbol(".")) {
      advance();
      if (current_.type != Token::Type::kName)
        throw ParseError{current_.offset, "expected a field name after '.', found " + describe(current_)};
      path.push_back(current_.text);
      advance();
    }
    if (path.size() < 2)
      throw ParseError{root.offset, "a path needs a field after the entity, e.g. " + root.text + ".status"};
    std::string dotted = path[0];
    for (size_t i = 1; i < path.size(); ++i) dotted += "." + path[i];
    if (std::find(paths_.begin(), paths_.end(), dotted) == paths_.end()) paths_.push_back(dotted);
    return path;
  }

  Lexer lexer_;
  Token current_;
  std::vector<std::string>& paths_;
};

// --- evaluation ---

const nlohmann::json kNull = nullptr;

const nlohmann::json& lookup(const nlohmann::json& scope, const std::vector<std::string>& path) {
  const nlohmann::json* at = &scope;
  for (const auto& name : path) {
    if (!at->is_object()) return kNull;
    auto it = at->find(name);
    if (it == at->end()) return kNull;
    at = &*it;
  }
  return *at;
}

bool equal(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

// <0, 0, >0, or nullopt when the two cannot be ordered.
std::optional<int> order(const nlohmann::json& a, const nlohmann::json& b) {
  auto sign = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if (a.is_number() && b.is_number()) return sign(a.get<double>(), b.get<double>());
  if (a.is_string() && b.is_string()) {
    const auto& x = a.get_ref<const std::string&>();
    const auto& y = b.get_ref<const std::string&>();
    auto tx = parse_rfc3339(x);
    auto ty = parse_rfc3339(y);
    if (tx && ty) return sign(*tx, *ty);
    return sign(x, y);
  }
  return std::nullopt;
}

bool truthy(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  return false;
}

nlohmann::json evaluate(const Node& node, const nlohmann::json& scope);

bool holds(const Node& node, const nlohmann::json& scope) { return truthy(evaluate(node, scope)); }

nlohmann::json evaluate(const Node& node, const nlohmann::json& scope) {
  auto value = [&](size_t i) { return evaluate(*node.children[i], scope); };
  auto compare = [&](auto accept) {
    auto o = order(value(0), value(1));
    return o && accept(*o);
  };
  switch (node.op) {
    case Op::kLiteral:
      return node.literal;
    case Op::kPath:
      return lookup(scope, node.path);
    case Op::kExists:
      return !lookup(scope, node.path).is_null();
    case Op::kNot:
      return !holds(*node.children[0], scope);
    case Op::kAnd:
      return holds(*node.children[0], scope) && holds(*node.children[1], scope);
    case Op::kOr:
      return holds(*node.children[0], scope) || holds(*node.children[1], scope);
    case Op::kEq:
      return equal(value(0), value(1));
    case Op::kNe:
      return !equal(value(0), value(1));
    case Op::kLt:
      return compare([](int o) { return o < 0; });
    case Op::kLe:
      return compare([](int o) { return o <= 0; });
    case Op::kGt:
      return compare([](int o) { return o > 0; });
    case Op::kGe:
      return compare([](int o) { return o >= 0; });
    case Op::kInList:
    case Op::kInPath: {
      const nlohmann::json x = value(0);
      const nlohmann::json& list = node.op == Op::kInList ? node.literal : lookup(scope, node.path);
      if (!list.is_array()) return false;
      return std::any_of(list.begin(), list.end(), [&](const nlohmann::json& e) { return equal(x, e); });
    }
  }
  return false;
}

}  // namespace

std::optional<Expression> Expression::parse(std::string_view text, const SourceSpot& where, Diagnostics& errors) {
  auto paths = std::make_shared<std::vector<std::string>>();
  try {
    Parser parser(text, *paths);
    Expression expression;
    expression.root_ = parser.parse();
    expression.paths_ = std::move(paths);
    expression.text_ = std::string(text);
    return expression;
  } catch (const ParseError& e) {
    // Conditions are one line in practice; count newlines anyway.
    int line = where.line;
    int column = where.column;
    for (size_t i = 0; i < e.offset && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    errors.push_back(Diagnostic{where.file, line, column, e.message});
    return std::nullopt;
  }
}

bool Expression::test(const nlohmann::json& scope) const { return root_ && holds(*root_, scope); }

const std::vector<std::string>& Expression::paths() const { return *paths_; }

const std::string& Expression::text() const { return text_; }

}  // namespace tactd
