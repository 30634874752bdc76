// Just enough XML for a REST API that speaks it (CloudFront): escaping text
// for a request body, and reading the text of an element from a response.
//
// The reader is strict rather than forgiving: a document that is not
// well-formed is an error, not a best guess, and DTDs are refused outright so
// no entity beyond the five predefined ones (and character references) can
// ever be expanded.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cachekit {

// s with & < > " ' escaped (and CR as &#13;, which a parser would otherwise
// turn into LF), usable in element text and attribute values. Throws
// cachekit::Error (22021) for a control byte other than tab, LF and CR: XML
// 1.0 cannot carry one, not even as a character reference. Bytes >= 0x80
// pass through (callers hand in UTF-8).
std::string xml_escape(std::string_view s);

// The character data directly inside the first element at `path`, in
// document order, with references decoded. The path is local names (any
// namespace prefix dropped) from the root element down, separated by '/':
// "ErrorResponse/Error/Code". nullopt when no element is at that path.
// Throws cachekit::Error (22P02) when doc is not a well-formed document or
// has a DOCTYPE; the message never quotes the document.
std::optional<std::string> xml_element_text(std::string_view doc, std::string_view path);

}  // namespace cachekit
