// The HTML part of an email: the rendered plain text, escaped, so that
// customer data (a name with "<script>", an address with "&") is shown as
// text and never read as markup.
#pragma once

#include <string>
#include <string_view>

namespace tactd {

// `& < > " '` as `&amp; &lt; &gt; &quot; &#39;`; every other byte as is.
std::string html_escape(std::string_view text);

// `text` as an HTML document: paragraphs (separated by blank lines) in
// <p>, single line breaks as <br>, all text escaped.
std::string html_body(std::string_view text);

}  // namespace tactd
