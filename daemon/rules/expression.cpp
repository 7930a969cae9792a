#include "rules/expression.h"

#include <algorithm>
#include <charconv>
#include <compare>
#include <cstdint>
#include <utility>

#include "model/entity.h"
#include "model/time.h"

namespace tactd {

// An AST node. Leaves are literals, paths and exists(); inner nodes are
// operators over `children`.
struct Expression::Node {
  enum class Op { kLiteral, kPath, kExists, kNot, kAnd, kOr, kEq, kNe, kLt, kLe, kGt, kGe, kInList, kInPath };
  Op op = Op::kLiteral;
  nlohmann::json literal;                             // kLiteral: the value; kInList: the list
  std::vector<std::string> path;                      // kPath, kExists, kInPath: entity type, then fields
  std::vector<std::shared_ptr<const Node>> children;  // operands; kAnd and kOr take two or more
};

namespace {

using Json = nlohmann::json;
using Node = Expression::Node;
using NodePtr = std::shared_ptr<const Node>;
using Op = Node::Op;

constexpr int kMaxDepth = 64;      // nesting of '(' and '!'
constexpr size_t kMaxQuoted = 40;  // longest piece of the condition quoted back in a message
constexpr std::string_view kExistsUsage = "exists() takes a field path, e.g. exists(order.cancel_reason)";

// ---------------------------------------------------------------- lexing

struct Token {
  enum class Type { kEnd, kName, kString, kNumber, kSymbol, kError };
  Type type = Type::kEnd;
  std::string_view text;  // as written
  Json value;             // kString, kNumber
  std::string error;      // kError: what is wrong
  size_t offset = 0;      // in the condition
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_alpha(c) || is_digit(c) || c == '-'; }

// Splits the condition into tokens on demand. A mistake in the text becomes
// a kError token, so that the parser reports it only when it gets there.
class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  Token next() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
    if (pos_ >= text_.size()) return make_token(Token::Type::kEnd);
    const char c = text_[pos_];
    const char after = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    if (is_alpha(c)) return take(Token::Type::kName, span(pos_, is_name_char));
    if (is_digit(c) || (c == '-' && is_digit(after))) return number();
    if (c == '\'' || c == '"') return string();
    return symbol();
  }

 private:
  template <typename Pred>
  size_t span(size_t from, Pred pred) const {
    size_t end = from + 1;
    while (end < text_.size() && pred(text_[end])) ++end;
    return end - from;
  }

  Token make_token(Token::Type type) const {
    Token token;
    token.type = type;
    token.offset = pos_;
    return token;
  }

  Token take(Token::Type type, size_t length, Json value = {}) {
    Token token = make_token(type);
    token.text = text_.substr(pos_, length);
    token.value = std::move(value);
    pos_ += length;
    return token;
  }

  Token error(std::string message) const {
    Token token = make_token(Token::Type::kError);
    token.error = std::move(message);
    return token;
  }

  // An integer stays an integer (int64, or double when it is too large);
  // anything with a fraction or exponent is a double.
  Token number() {
    // The whole run of number-like characters, so that 3.5.1 or 3abc is one mistake.
    auto in_number = [&](size_t i) {
      const char ch = text_[i];
      const bool after_exponent = text_[i - 1] == 'e' || text_[i - 1] == 'E';
      return is_name_char(ch) || ch == '.' || (ch == '+' && after_exponent);
    };
    size_t end = pos_ + 1;
    while (end < text_.size() && in_number(end)) ++end;
    const std::string_view run = text_.substr(pos_, end - pos_);
    const char* first = run.data();
    const char* last = run.data() + run.size();
    std::int64_t integer = 0;
    if (auto [ptr, ec] = std::from_chars(first, last, integer); ec == std::errc{} && ptr == last)
      return take(Token::Type::kNumber, run.size(), integer);
    double real = 0;
    if (auto [ptr, ec] = std::from_chars(first, last, real); ptr == last) {
      if (ec == std::errc{}) return take(Token::Type::kNumber, run.size(), real);
      return error("'" + std::string(run) + "' is out of range for a number");
    }
    return error("'" + std::string(run) + "' is not a number (write numbers like 3, -2 or 23.50)");
  }

  Token string() {
    const size_t close = text_.find(text_[pos_], pos_ + 1);
    if (close == std::string_view::npos) return error("unterminated string starting here");
    return take(Token::Type::kString, close + 1 - pos_, std::string(text_.substr(pos_ + 1, close - pos_ - 1)));
  }

  Token symbol() {
    const std::string_view rest = text_.substr(pos_);
    if (rest.starts_with("===")) return error("'===' is not an operator; use '==' to compare");
    if (rest.starts_with("!==")) return error("'!==' is not an operator; use '!=' to compare");
    for (std::string_view two : {"==", "!=", "<=", ">=", "&&", "||"})
      if (rest.starts_with(two)) return take(Token::Type::kSymbol, 2);
    const char c = rest[0];
    if (c == '=') return error("'=' is not an operator; use '==' to compare");
    if (c == '&') return error("'&' is not an operator; use '&&'");
    if (c == '|') return error("'|' is not an operator; use '||'");
    if (std::string_view("<>!()[],.").find(c) != std::string_view::npos) return take(Token::Type::kSymbol, 1);
    return unexpected_character();
  }

  Token unexpected_character() {
    const auto byte = static_cast<unsigned char>(text_[pos_]);
    if (byte < 0x20 || byte == 0x7f) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      return error(std::string("unexpected control character U+00") + kHex[byte >> 4] + kHex[byte & 0xf]);
    }
    // Quote the whole UTF-8 sequence, not one byte of it.
    const size_t length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    const std::string character(text_.substr(pos_, length));
    for (std::string_view curly : {"\u2018", "\u2019", "\u201C", "\u201D"})
      if (character == curly) return error("unexpected character '" + character + "'; quote text with ' or \"");
    return error("unexpected character '" + character + "'");
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------- parsing

bool is_keyword(std::string_view word) {
  return word == "true" || word == "false" || word == "null" || word == "in" || word == "exists";
}

std::optional<Json> literal_of(const Token& token) {
  if (token.type == Token::Type::kString || token.type == Token::Type::kNumber) return token.value;
  if (token.type != Token::Type::kName) return std::nullopt;
  if (token.text == "true") return Json(true);
  if (token.text == "false") return Json(false);
  if (token.text == "null") return Json(nullptr);
  return std::nullopt;
}

std::optional<Op> comparison_of(const Token& token) {
  static constexpr std::pair<std::string_view, Op> kComparisons[] = {{"==", Op::kEq}, {"!=", Op::kNe}, {"<", Op::kLt},
                                                                     {"<=", Op::kLe}, {">", Op::kGt},  {">=", Op::kGe}};
  if (token.type != Token::Type::kSymbol) return std::nullopt;
  for (const auto& [symbol, op] : kComparisons)
    if (token.text == symbol) return op;
  return std::nullopt;
}

// A field each entity type certainly has, for examples in messages.
std::string_view example_field(EntityType type) {
  switch (type) {
    case EntityType::kCustomer:
      return "name";
    case EntityType::kSubscription:
      return "plan";
    default:
      return "status";
  }
}

// Recursive descent over the grammar in expression.h. Every parse_ function
// returns nullptr once something is wrong; only the first mistake is kept.
class Parser {
 public:
  Parser(std::string_view text, const SourceSpot& where) : text_(text), where_(where), lexer_(text) {}

  NodePtr parse() {
    advance();
    if (current_.type == Token::Type::kEnd) return fail(0, "empty condition");
    NodePtr root = parse_or(0);
    if (!root) return nullptr;
    if (current_.type == Token::Type::kEnd) return root;
    if (at_symbol(")")) return fail(current_.offset, "')' has no matching '('");
    if (at_name("and")) return fail(current_.offset, "'and' is not an operator; use '&&'");
    if (at_name("or")) return fail(current_.offset, "'or' is not an operator; use '||'");
    if (comparison_of(current_) || at_name("in"))
      return fail(current_.offset, "comparisons do not chain; join them with '&&', e.g. a < b && b < c");
    return fail(current_.offset, "unexpected " + describe(current_) + " after the end of the condition");
  }

  // Set when parse() returned nullptr.
  const std::optional<Diagnostic>& error() const { return error_; }
  std::vector<std::string> take_paths() { return std::move(paths_); }

 private:
  void advance() {
    previous_ = current_.text;
    current_ = lexer_.next();
    if (current_.type == Token::Type::kError) fail(current_.offset, current_.error);
  }
  bool at_symbol(std::string_view s) const { return current_.type == Token::Type::kSymbol && current_.text == s; }
  bool at_name(std::string_view s) const { return current_.type == Token::Type::kName && current_.text == s; }
  bool at_path() const { return current_.type == Token::Type::kName && !is_keyword(current_.text); }

  // Records the first mistake only: later ones are usually its echoes.
  std::nullptr_t fail(size_t offset, std::string message) {
    if (!error_) {
      const auto [line, column] = position(offset);
      error_ = Diagnostic{where_.file, line, column, std::move(message)};
    }
    return nullptr;
  }

  // Line and column of `offset`, counting characters (not UTF-8 bytes) and
  // starting again at column 1 after a newline.
  std::pair<int, int> position(size_t offset) const {
    int line = where_.line;
    int column = where_.column;
    for (size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text_[i]) & 0xc0) != 0x80) {
        ++column;
      }
    }
    return {line, column};
  }

  // "column 25", or "line 8, column 3" when the condition spans lines.
  std::string place(size_t offset) const {
    const auto [line, column] = position(offset);
    std::string out = "column " + std::to_string(column);
    return line == where_.line ? out : "line " + std::to_string(line) + ", " + out;
  }

  static std::string describe(const Token& token) {
    if (token.type == Token::Type::kEnd) return "end of condition";
    if (token.type == Token::Type::kString) {
      if (token.text.size() <= kMaxQuoted) return std::string(token.text);
      return std::string(token.text.substr(0, kMaxQuoted)) + "...";
    }
    return "'" + std::string(token.text.substr(0, kMaxQuoted)) + (token.text.size() > kMaxQuoted ? "...'" : "'");
  }

  static std::shared_ptr<Node> make(Op op, std::vector<NodePtr> children = {}) {
    auto node = std::make_shared<Node>();
    node->op = op;
    node->children = std::move(children);
    return node;
  }

  // or := and ('||' and)*    and := unary ('&&' unary)*
  NodePtr parse_or(int depth) { return parse_chain(depth, "||", Op::kOr, &Parser::parse_and); }
  NodePtr parse_and(int depth) { return parse_chain(depth, "&&", Op::kAnd, &Parser::parse_unary); }

  // One n-ary node per run of the same operator keeps the tree shallow.
  NodePtr parse_chain(int depth, std::string_view symbol, Op op, NodePtr (Parser::*operand)(int)) {
    NodePtr first = (this->*operand)(depth);
    if (!first || !at_symbol(symbol)) return first;
    auto node = make(op, {std::move(first)});
    while (at_symbol(symbol)) {
      advance();
      NodePtr next = (this->*operand)(depth);
      if (!next) return nullptr;
      node->children.push_back(std::move(next));
    }
    return node;
  }

  NodePtr parse_unary(int depth) {
    if (depth > kMaxDepth)
      return fail(current_.offset, "the condition is nested too deeply (more than " + std::to_string(kMaxDepth) +
                                       " levels of '(' and '!')");
    if (!at_symbol("!")) return parse_comparison(depth);
    advance();
    NodePtr operand = parse_unary(depth + 1);
    if (!operand) return nullptr;
    return make(Op::kNot, {std::move(operand)});
  }

  NodePtr parse_comparison(int depth) {
    NodePtr left = parse_operand(depth);
    if (!left) return nullptr;
    if (auto op = comparison_of(current_)) {
      advance();
      NodePtr right = parse_operand(depth);
      if (!right) return nullptr;
      return make(*op, {std::move(left), std::move(right)});
    }
    if (!at_name("in")) return left;
    advance();
    if (at_symbol("[")) return parse_list(std::move(left));
    if (!at_path())
      return fail(current_.offset, "'in' needs a list like ['a', 'b'] or a field path, found " + describe(current_));
    auto node = parse_path();
    if (!node) return nullptr;
    node->op = Op::kInPath;
    node->children = {std::move(left)};
    return node;
  }

  // list := '[' (literal (',' literal)*)? ']'
  NodePtr parse_list(NodePtr left) {
    const size_t open = current_.offset;
    advance();
    auto node = make(Op::kInList, {std::move(left)});
    node->literal = Json::array();
    if (at_symbol("]")) {
      advance();
      return node;
    }
    while (true) {
      auto value = literal_of(current_);
      if (!value)
        return fail(current_.offset,
                    "list elements must be literals ('text', numbers, true, false, null), found " + describe(current_));
      node->literal.push_back(std::move(*value));
      advance();
      if (at_symbol(",")) {
        advance();
      } else if (at_symbol("]")) {
        advance();
        return node;
      } else {
        return fail(current_.offset,
                    "expected ']' to close the list started at " + place(open) + ", found " + describe(current_));
      }
    }
  }

  // operand := literal | path | 'exists' '(' path ')' | '(' expr ')'
  NodePtr parse_operand(int depth) {
    if (auto value = literal_of(current_)) {
      auto node = make(Op::kLiteral);
      node->literal = std::move(*value);
      advance();
      return node;
    }
    if (at_symbol("(")) {
      const size_t open = current_.offset;
      advance();
      NodePtr inner = parse_or(depth + 1);
      if (!inner) return nullptr;
      if (!at_symbol(")"))
        return fail(current_.offset,
                    "expected ')' to close the '(' at " + place(open) + ", found " + describe(current_));
      advance();
      return inner;
    }
    if (at_name("exists")) return parse_exists();
    if (at_path()) {
      auto node = parse_path();
      if (node) node->op = Op::kPath;
      return node;
    }
    if (previous_.empty())
      return fail(current_.offset, "expected a value, a field path or '(', found " + describe(current_));
    return fail(current_.offset,
                "expected a value after '" + std::string(previous_) + "', found " + describe(current_));
  }

  NodePtr parse_exists() {
    advance();
    if (!at_symbol("(")) return fail(current_.offset, std::string(kExistsUsage));
    advance();
    if (!at_path()) return fail(current_.offset, std::string(kExistsUsage));
    auto node = parse_path();
    if (!node) return nullptr;
    if (!at_symbol(")"))
      return fail(current_.offset,
                  "expected ')' to close exists(" + node_path(*node) + "), found " + describe(current_));
    advance();
    node->op = Op::kExists;
    return node;
  }

  static std::string node_path(const Node& node) {
    std::string dotted;
    for (const auto& name : node.path) dotted += (dotted.empty() ? "" : ".") + name;
    return dotted;
  }

  // path := root ('.' name)*, with at least one name. Returns a node with
  // `path` set; the caller decides what it is.
  std::shared_ptr<Node> parse_path() {
    const Token root = current_;
    auto node = make(Op::kPath);
    node->path.emplace_back(root.text);
    advance();
    while (at_symbol(".")) {
      advance();
      if (current_.type != Token::Type::kName)
        return fail(current_.offset, "expected a field name after '.', found " + describe(current_));
      node->path.emplace_back(current_.text);
      advance();
    }
    const std::string dotted = node_path(*node);
    const auto type = parse_entity_type(root.text);
    if (!type && node->path.size() > 1)
      return fail(root.offset, "unknown entity '" + std::string(root.text) + "' in '" + dotted + "' (expected one of " +
                                   std::string(entity_type_list()) + ")");
    if (!type) return fail(root.offset, bare_word(dotted));
    if (node->path.size() == 1)
      return fail(root.offset,
                  "a path needs a field after the entity, e.g. " + dotted + "." + std::string(example_field(*type)));
    if (std::find(paths_.begin(), paths_.end(), dotted) == paths_.end()) paths_.push_back(dotted);
    return node;
  }

  // A lone word that is neither a keyword nor an entity.
  static std::string bare_word(const std::string& word) {
    if (word == "and") return "'and' is not an operator; use '&&'";
    if (word == "or") return "'or' is not an operator; use '||'";
    if (word == "not") return "'not' is not an operator; use '!'";
    return "'" + word + "' is neither a value nor a field path; quote text, as in '" + word +
           "', or name a field, as in order.status";
  }

  std::string_view text_;
  const SourceSpot& where_;
  Lexer lexer_;
  Token current_;
  std::string_view previous_;  // the token before current_, empty at the start
  std::optional<Diagnostic> error_;
  std::vector<std::string> paths_;
};

// ---------------------------------------------------------------- evaluation

const Json& lookup(const Json& scope, const std::vector<std::string>& path) {
  static const Json null_value;
  const Json* at = &scope;
  for (const auto& name : path) {
    if (!at->is_object()) return null_value;
    auto it = at->find(name);
    if (it == at->end()) return null_value;
    at = &*it;
  }
  return *at;
}

// Calls `f` with the integer in `v` as std::int64_t or std::uint64_t.
template <typename F>
auto with_integer(const Json& v, F f) {
  return v.is_number_unsigned() ? f(v.get<std::uint64_t>()) : f(v.get<std::int64_t>());
}

std::partial_ordering compare_numbers(const Json& a, const Json& b) {
  if (a.is_number_float() || b.is_number_float()) return a.get<double>() <=> b.get<double>();
  return with_integer(a, [&](auto x) {
    return with_integer(b, [&](auto y) {
      if (std::cmp_less(x, y)) return std::partial_ordering::less;
      return std::cmp_equal(x, y) ? std::partial_ordering::equivalent : std::partial_ordering::greater;
    });
  });
}

// A cheap test that spares parse_rfc3339 most ordinary text.
bool looks_like_date_time(std::string_view s) {
  return s.size() >= 20 && is_digit(s[0]) && is_digit(s[3]) && s[4] == '-' && s[7] == '-' &&
         (s[10] == 'T' || s[10] == 't' || s[10] == ' ');
}

// Numbers with numbers; strings with strings, as instants when both are
// RFC 3339 date-times; anything else is unordered.
std::partial_ordering order(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b);
  if (!a.is_string() || !b.is_string()) return std::partial_ordering::unordered;
  const auto& x = a.get_ref<const std::string&>();
  const auto& y = b.get_ref<const std::string&>();
  if (looks_like_date_time(x) && looks_like_date_time(y)) {
    const auto tx = parse_rfc3339(x);
    const auto ty = parse_rfc3339(y);
    if (tx && ty) return *tx <=> *ty;
  }
  return x <=> y;
}

bool truthy(const Json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return compare_numbers(v, Json(0)) != 0;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array()) return !v.empty();
  return false;
}

bool holds(const Node& node, const Json& scope);

// The value of an operand: a reference into the tree or the scope, or into
// `scratch` for the result of an operator.
const Json& value_of(const Node& node, const Json& scope, Json& scratch) {
  if (node.op == Op::kLiteral) return node.literal;
  if (node.op == Op::kPath) return lookup(scope, node.path);
  scratch = holds(node, scope);
  return scratch;
}

bool holds(const Node& node, const Json& scope) {
  Json left_scratch;
  Json right_scratch;
  auto left = [&]() -> const Json& { return value_of(*node.children[0], scope, left_scratch); };
  auto right = [&]() -> const Json& { return value_of(*node.children[1], scope, right_scratch); };
  auto child_holds = [&](const NodePtr& child) { return holds(*child, scope); };
  switch (node.op) {
    case Op::kLiteral:
      return truthy(node.literal);
    case Op::kPath:
      return truthy(lookup(scope, node.path));
    case Op::kExists:
      return !lookup(scope, node.path).is_null();
    case Op::kNot:
      return !holds(*node.children[0], scope);
    case Op::kAnd:
      return std::all_of(node.children.begin(), node.children.end(), child_holds);
    case Op::kOr:
      return std::any_of(node.children.begin(), node.children.end(), child_holds);
    case Op::kEq:
      return same_value(left(), right());
    case Op::kNe:
      return !same_value(left(), right());
    case Op::kLt:
      return order(left(), right()) < 0;
    case Op::kLe:
      return order(left(), right()) <= 0;
    case Op::kGt:
      return order(left(), right()) > 0;
    case Op::kGe:
      return order(left(), right()) >= 0;
    case Op::kInList:
    case Op::kInPath: {
      const Json& x = left();
      const Json& list = node.op == Op::kInList ? node.literal : lookup(scope, node.path);
      return list.is_array() && std::any_of(list.begin(), list.end(), [&](const Json& e) { return same_value(x, e); });
    }
  }
  return false;
}

}  // namespace

std::optional<Expression> Expression::parse(std::string_view text, const SourceSpot& where, Diagnostics& errors) {
  Parser parser(text, where);
  NodePtr root = parser.parse();
  if (!root) {
    errors.push_back(parser.error().value_or(Diagnostic{where.file, where.line, where.column, "invalid condition"}));
    return std::nullopt;
  }
  Expression expression;
  expression.root_ = std::move(root);
  expression.paths_ = std::make_shared<const std::vector<std::string>>(parser.take_paths());
  expression.text_ = std::string(text);
  return expression;
}

bool Expression::test(const nlohmann::json& scope) const {
  try {
    return root_ && holds(*root_, scope);
  } catch (...) {  // only running out of memory can throw; an undecidable condition does not hold
    return false;
  }
}

const std::vector<std::string>& Expression::paths() const {
  static const std::vector<std::string> no_paths;
  return paths_ ? *paths_ : no_paths;
}

const std::string& Expression::text() const { return text_; }

bool same_value(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  return a == b;
}

}  // namespace tactd
