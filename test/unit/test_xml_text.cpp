#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/xml_text.h"

namespace cachekit {
namespace {

std::string sqlstate_of(const std::string &doc) {
  try {
    xml_element_text(doc, "a");
  } catch (const Error &e) {
    return e.sqlstate();
  }
  return "none";
}

TEST(XmlEscape, EscapesMarkupAndKeepsTheRest) {
  EXPECT_EQ(xml_escape("/a&b<c>d\"e'f"), "/a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(xml_escape("tab\tlf\ncr\r"), "tab\tlf\ncr&#13;");
  EXPECT_EQ(xml_escape("/caf\xC3\xA9"), "/caf\xC3\xA9");
  EXPECT_EQ(xml_escape(""), "");
}

TEST(XmlEscape, RefusesControlCharactersXmlCannotCarry) {
  for (char c : {'\0', '\x01', '\x1b', '\x7f'}) {
    try {
      xml_escape(std::string("/a") + c);
      ADD_FAILURE() << "accepted byte " << static_cast<int>(c);
    } catch (const Error &e) {
      EXPECT_STREQ(e.sqlstate(), "22021");
    }
  }
}

TEST(XmlElementText, ReadsNestedElementsByLocalName) {
  const std::string doc =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!-- a comment -->\n"
      "<ErrorResponse xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\n"
      "  <Error><Type>Sender</Type><Code>AccessDenied</Code>\n"
      "    <Message>User &lt;x&gt; &amp; &quot;y&quot; &apos;z&apos; &#65;&#x42;&#xe9;</Message>\n"
      "  </Error>\n"
      "  <RequestId>r-1</RequestId>\n"
      "</ErrorResponse>\n";
  EXPECT_EQ(xml_element_text(doc, "ErrorResponse/Error/Code"), "AccessDenied");
  EXPECT_EQ(xml_element_text(doc, "ErrorResponse/Error/Message"),
            "User <x> & \"y\" 'z' AB\xC3\xA9");
  EXPECT_EQ(xml_element_text(doc, "ErrorResponse/RequestId"), "r-1");
  EXPECT_EQ(xml_element_text(doc, "ErrorResponse/Code"), std::nullopt) << "path from the root";
  EXPECT_EQ(xml_element_text(doc, "Error/Code"), std::nullopt);
  EXPECT_EQ(xml_element_text(doc, "ErrorResponse/Error/Missing"), std::nullopt);
}

TEST(XmlElementText, PrefixesCdataEmptyElementsAndFirstMatch) {
  const std::string doc =
      "<cf:A xmlns:cf='urn:x' k=\"v &amp; w\"><cf:B>one</cf:B><cf:B>two</cf:B>"
      "<C><![CDATA[<raw> & ]]>tail</C><D/><E></E><F>x<G>inner</G>y</F></cf:A>";
  EXPECT_EQ(xml_element_text(doc, "A/B"), "one");
  EXPECT_EQ(xml_element_text(doc, "A/C"), "<raw> & tail");
  EXPECT_EQ(xml_element_text(doc, "A/D"), "");
  EXPECT_EQ(xml_element_text(doc, "A/E"), "");
  EXPECT_EQ(xml_element_text(doc, "A/F"), "xy") << "only the element's own character data";
  EXPECT_EQ(xml_element_text(doc, "A/F/G"), "inner");
  EXPECT_EQ(xml_element_text("<a>x\r\ny\rz</a>", "a"), "x\ny\nz");
}

TEST(XmlElementText, RefusesDocumentsThatAreNotWellFormed) {
  for (const char *doc : {
           "",
           "just text",
           "<a>",
           "<a></b>",
           "<a><b></a></b>",
           "<a>x</a><b/>",
           "<a>x</a>trailing",
           "<a>&bogus;</a>",
           "<a>&amp</a>",
           "<a>&#0;</a>",
           "<a>&#x110000;</a>",
           "<a>&#xZZ;</a>",
           "<a>\x01</a>",
           "<a b=c/>",
           "<a b=\"<\"/>",
           "<a b=\"x\"c=\"y\"/>",
           "<a b/>",
           "<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
           "<a><!DOCTYPE x></a>",
           "<a><!-- x -- y --></a>",
           "<a><![CDATA[x</a>",
           "<a>]]></a>",
           "<a></a><?xml version=\"1.0\"?>",
           "< a/>",
       }) {
    EXPECT_EQ(sqlstate_of(doc), "22P02") << doc;
  }
}

TEST(XmlElementText, MalformedAfterTheWantedElementIsStillAnError) {
  EXPECT_EQ(sqlstate_of("<a>found</a"), "22P02");
  EXPECT_EQ(sqlstate_of("<r><a>found</a><b></r>"), "22P02");
}

TEST(XmlElementText, ErrorsDoNotQuoteTheDocument) {
  try {
    xml_element_text("<a>SECRETVALUE&nope;</a>", "a");
    FAIL() << "accepted";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()).find("SECRETVALUE"), std::string::npos);
    EXPECT_EQ(e.detail().find("SECRETVALUE"), std::string::npos);
  }
}

TEST(XmlElementText, DeepNestingNeitherCrashesNorMatchesWrongly) {
  std::string doc;
  const int depth = 200000;
  for (int i = 0; i < depth; ++i) doc += "<a>";
  doc += "deep";
  for (int i = 0; i < depth; ++i) doc += "</a>";
  EXPECT_EQ(xml_element_text(doc, "a/a/a"), "");
  EXPECT_EQ(xml_element_text(doc, "a/b"), std::nullopt);
  doc.pop_back();
  EXPECT_EQ(sqlstate_of(doc), "22P02");
}

}  // namespace
}  // namespace cachekit
