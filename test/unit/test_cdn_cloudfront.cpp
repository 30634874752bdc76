#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/cdn_cloudfront.h"
#include "core/error.h"
#include "core/xml_text.h"

namespace cachekit::cdn {
namespace {

constexpr char kKeyId[] = "AKIDEXAMPLE42";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr int64_t kNow = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT

CloudFrontConfig config() {
  CloudFrontConfig c;
  c.endpoint = "https://cf.test:8443/";
  c.distribution_id = "EDFDVBD6EXAMPLE";
  c.access_key_id = kKeyId;
  c.secret_access_key = kSecret;
  c.common.timeout_ms = 1234;
  c.common.ca_file = "/tmp/ca.pem";
  return c;
}

// Records every request and answers from a script.
struct FakeTransport {
  std::vector<HttpRequest> seen;
  std::deque<HttpExchange> answers;

  Transport fn() {
    return [this](const std::vector<HttpRequest> &reqs) {
      std::vector<HttpExchange> out;
      for (const HttpRequest &r : reqs) {
        seen.push_back(r);
        if (answers.empty()) {
          ADD_FAILURE() << "unexpected request " << r.method << " " << r.url;
          out.emplace_back();
          out.back().failed = true;
          out.back().sqlstate = "08001";
          continue;
        }
        out.push_back(std::move(answers.front()));
        answers.pop_front();
      }
      return out;
    };
  }

  void answer(long status, std::string body,
              std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpExchange x;
    x.response.status = status;
    x.response.body = std::move(body);
    x.response.headers = std::move(headers);
    answers.push_back(std::move(x));
  }

  void fail(const char *sqlstate, std::string message, std::string detail = {}) {
    HttpExchange x;
    x.failed = true;
    x.sqlstate = sqlstate;
    x.message = std::move(message);
    x.detail = std::move(detail);
    answers.push_back(std::move(x));
  }
};

std::string invalidation_xml(const std::string &id, const std::string &status) {
  return "<?xml version=\"1.0\"?>\n<Invalidation "
         "xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><Id>" +
         id + "</Id><Status>" + status +
         "</Status><CreateTime>2023-11-14T22:13:20.000Z</CreateTime><InvalidationBatch><Paths>"
         "<Quantity>1</Quantity><Items><Path>/a</Path></Items></Paths><CallerReference>ck-1"
         "</CallerReference></InvalidationBatch></Invalidation>";
}

std::string error_xml(const std::string &code, const std::string &message) {
  return "<?xml version=\"1.0\"?>\n<ErrorResponse "
         "xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><Error><Type>Sender</Type>"
         "<Code>" +
         code + "</Code><Message>" + message +
         "</Message></Error><RequestId>b0e5f1a2-0000</RequestId></ErrorResponse>";
}

Batch paths_batch(std::vector<std::string> items, std::string ref = "ck-1") {
  Batch b;
  b.id = 1;
  b.kind = PurgeKind::kPaths;
  b.items = std::move(items);
  b.caller_reference = std::move(ref);
  return b;
}

std::unique_ptr<Provider> provider() {
  return make_cloudfront(config(), [] { return kNow; });
}

std::string header_value(const HttpRequest &r, const std::string &name) {
  for (const auto &h : r.headers)
    if (h.first == name) return h.second;
  return "<none>";
}

TEST(CloudFrontBody, IsTheInvalidationBatchDocumentWithEscapedText) {
  const std::string xml = cloudfront_invalidation_batch_xml({"/a", "/b&c<d>\"'e", "/img/*"}, "r&1");
  EXPECT_EQ(xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InvalidationBatch "
            "xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><Paths><Quantity>3"
            "</Quantity><Items><Path>/a</Path><Path>/b&amp;c&lt;d&gt;&quot;&apos;e</Path>"
            "<Path>/img/*</Path></Items></Paths><CallerReference>r&amp;1</CallerReference>"
            "</InvalidationBatch>");
  // What a parser reads back is what was meant.
  EXPECT_EQ(xml_element_text(xml, "InvalidationBatch/Paths/Quantity"), "3");
  EXPECT_EQ(xml_element_text(xml, "InvalidationBatch/CallerReference"), "r&1");
}

TEST(CloudFrontBody, QuantityCountsEveryPath) {
  std::vector<std::string> paths;
  for (int i = 0; i < 3000; ++i) paths.push_back("/p/" + std::to_string(i));
  const std::string xml = cloudfront_invalidation_batch_xml(paths, "ref");
  EXPECT_EQ(xml_element_text(xml, "InvalidationBatch/Paths/Quantity"), "3000");
  size_t n = 0;
  for (size_t at = xml.find("<Path>"); at != std::string::npos; at = xml.find("<Path>", at + 1))
    ++n;
  EXPECT_EQ(n, 3000u);
}

TEST(CloudFrontSend, PostsASignedInvalidationBatch) {
  FakeTransport t;
  t.answer(201, invalidation_xml("I2J0I21PCUYOIK", "InProgress"),
           {{"Location",
             "https://cf.test/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation/"
             "I2J0I21PCUYOIK"}});
  const SendResult r = provider()->send(paths_batch({"/a", "/b c&d"}, "ck-17"), t.fn());
  ASSERT_EQ(t.seen.size(), 1u);
  const HttpRequest &q = t.seen[0];
  EXPECT_EQ(q.method, "POST");
  EXPECT_EQ(q.url, "https://cf.test:8443/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation");
  EXPECT_EQ(header_value(q, "Content-Type"), "text/xml");
  EXPECT_EQ(q.aws_sigv4, "aws:amz:us-east-1:cloudfront");
  EXPECT_EQ(q.user, kKeyId);
  EXPECT_EQ(q.password, kSecret);
  EXPECT_EQ(q.timeout_ms, 1234);
  EXPECT_EQ(q.ca_file, "/tmp/ca.pem");
  EXPECT_EQ(q.body, cloudfront_invalidation_batch_xml({"/a", "/b c&d"}, "ck-17"));
  for (const auto &h : q.headers) EXPECT_NE(h.first, "Authorization") << "curl signs, not us";

  EXPECT_EQ(r.outcome, Outcome::kInProgress);
  EXPECT_EQ(r.provider_id, "I2J0I21PCUYOIK");
  EXPECT_EQ(r.api_calls, 1);
  EXPECT_TRUE(r.reachable);
  EXPECT_FALSE(r.throttled);
  EXPECT_EQ(r.error, "");
}

TEST(CloudFrontSend, SignsInTheConfiguredRegion) {
  CloudFrontConfig c = config();
  c.region = "eu-west-1";
  FakeTransport t;
  t.answer(201, invalidation_xml("I1", "InProgress"));
  make_cloudfront(c)->send(paths_batch({"/a"}), t.fn());
  ASSERT_EQ(t.seen.size(), 1u);
  EXPECT_EQ(t.seen[0].aws_sigv4, "aws:amz:eu-west-1:cloudfront");
}

TEST(CloudFrontSend, AnInvalidationAlreadyCompletedIsCompleted) {
  FakeTransport t;
  t.answer(201, invalidation_xml("IABC", "Completed"));
  const SendResult r = provider()->send(paths_batch({"/a"}), t.fn());
  EXPECT_EQ(r.outcome, Outcome::kCompleted);
  EXPECT_EQ(r.provider_id, "IABC");
}

TEST(CloudFrontSend, PurgeAllIsTheWildcardPath) {
  FakeTransport t;
  t.answer(201, invalidation_xml("IALL", "InProgress"));
  Batch b;
  b.kind = PurgeKind::kAll;
  b.caller_reference = "ck-all";
  const SendResult r = provider()->send(b, t.fn());
  ASSERT_EQ(t.seen.size(), 1u);
  EXPECT_EQ(t.seen[0].body, cloudfront_invalidation_batch_xml({"/*"}, "ck-all"));
  EXPECT_EQ(r.outcome, Outcome::kInProgress);
}

TEST(CloudFrontSend, RefusesWithoutARequestWhatCannotBeSent) {
  Batch tags;
  tags.kind = PurgeKind::kTags;
  tags.items = {"product-1"};
  tags.caller_reference = "ck-t";
  std::vector<std::string> many;
  for (int i = 0; i < 3001; ++i) many.push_back("/" + std::to_string(i));
  const struct {
    Batch batch;
    const char *error_part;
  } cases[] = {
      {tags, "CloudFront has no tag purges"},         {paths_batch({}), "at least one path"},
      {paths_batch(many), "at most 3000 paths"},      {paths_batch({"/a"}, ""), "caller reference"},
      {paths_batch({"/a\x01"}), "control character"},
  };
  for (const auto &c : cases) {
    FakeTransport t;
    const SendResult r = provider()->send(c.batch, t.fn());
    EXPECT_EQ(r.outcome, Outcome::kFailed) << c.error_part;
    EXPECT_NE(r.error.find(c.error_part), std::string::npos) << r.error;
    EXPECT_TRUE(t.seen.empty()) << c.error_part;
    EXPECT_EQ(r.api_calls, 0);
    EXPECT_FALSE(r.reachable);
  }
}

TEST(CloudFrontSend, ThreeThousandPathsIsOneRequest) {
  std::vector<std::string> paths;
  for (int i = 0; i < 3000; ++i) paths.push_back("/" + std::to_string(i));
  FakeTransport t;
  t.answer(201, invalidation_xml("IBIG", "InProgress"));
  EXPECT_EQ(provider()->send(paths_batch(paths), t.fn()).outcome, Outcome::kInProgress);
  EXPECT_EQ(t.seen.size(), 1u);
}

TEST(CloudFrontSend, ClassifiesErrorsAsAwsDefinesThem) {
  const struct {
    long status;
    std::string body;
    Outcome outcome;
    bool throttled;
    std::string error;
  } cases[] = {
      {400, error_xml("TooManyInvalidationsInProgress", "Too many."), Outcome::kRetry, true,
       "TooManyInvalidationsInProgress: Too many."},
      {400, error_xml("Throttling", "Rate exceeded"), Outcome::kRetry, true,
       "Throttling: Rate exceeded"},
      {429, "", Outcome::kRetry, true, "CloudFront answered HTTP 429"},
      {429, error_xml("TooManyRequests", "Slow down"), Outcome::kRetry, true,
       "TooManyRequests: Slow down"},
      {500, error_xml("InternalFailure", "Oops"), Outcome::kRetry, false, "InternalFailure: Oops"},
      {503, error_xml("ServiceUnavailable", "Down"), Outcome::kRetry, false,
       "ServiceUnavailable: Down"},
      {502, "<html><body>Bad gateway</body>", Outcome::kRetry, false,
       "CloudFront answered HTTP 502"},
      {504, "", Outcome::kRetry, false, "CloudFront answered HTTP 504"},
      {403, error_xml("AccessDenied", "User: arn:aws:iam::1:user/x is not authorized"),
       Outcome::kFailed, false, "AccessDenied: User: arn:aws:iam::1:user/x is not authorized"},
      {403,
       error_xml("SignatureDoesNotMatch", "The request signature we calculated does not match"),
       Outcome::kFailed, false,
       "SignatureDoesNotMatch: The request signature we calculated does not match"},
      {404, error_xml("NoSuchDistribution", "The specified distribution does not exist."),
       Outcome::kFailed, false, "NoSuchDistribution: The specified distribution does not exist."},
      {400, error_xml("InvalidArgument", "Path must start with &apos;/&apos;"), Outcome::kFailed,
       false, "InvalidArgument: Path must start with '/'"},
      {400, error_xml("MissingBody", "Body required"), Outcome::kFailed, false,
       "MissingBody: Body required"},
      {400, error_xml("InconsistentQuantities", "Quantity 2, 1 items"), Outcome::kFailed, false,
       "InconsistentQuantities: Quantity 2, 1 items"},
      {409, error_xml("InvalidationBatchAlreadyExists", "Reused reference"), Outcome::kFailed,
       false, "InvalidationBatchAlreadyExists: Reused reference"},
      {413, error_xml("BatchTooLarge", "Too large"), Outcome::kFailed, false,
       "BatchTooLarge: Too large"},
      {400, error_xml("NoMessage", ""), Outcome::kFailed, false, "NoMessage"},
      {418, "", Outcome::kFailed, false, "CloudFront answered HTTP 418"},
      {404, "<ErrorResponse><Error><Code>Broken", Outcome::kFailed, false,
       "CloudFront answered HTTP 404"},
      {301, "", Outcome::kFailed, false, "CloudFront answered HTTP 301"},
  };
  for (const auto &c : cases) {
    FakeTransport t;
    t.answer(c.status, c.body, {{"Retry-After", "3"}});
    const SendResult r = provider()->send(paths_batch({"/a"}), t.fn());
    EXPECT_EQ(r.outcome, c.outcome) << c.status << " " << c.error;
    EXPECT_EQ(r.throttled, c.throttled) << c.status << " " << c.error;
    EXPECT_EQ(r.error, c.error);
    EXPECT_TRUE(r.reachable);
    EXPECT_EQ(r.api_calls, 1);
    EXPECT_EQ(r.provider_id, "");
    // The hint only matters for something that is tried again.
    EXPECT_EQ(r.retry_after_s, c.outcome == Outcome::kRetry ? 3.0 : -1.0) << c.error;
  }
}

TEST(CloudFrontSend, NetworkFailuresAreRetriedOthersFail) {
  const struct {
    const char *sqlstate;
    Outcome outcome;
  } cases[] = {
      {"08001", Outcome::kRetry},  {"08006", Outcome::kRetry},  {"57014", Outcome::kRetry},
      {"42501", Outcome::kFailed}, {"22023", Outcome::kFailed},
  };
  for (const auto &c : cases) {
    FakeTransport t;
    t.fail(c.sqlstate, "could not connect to cf.test", "Connection refused");
    const SendResult r = provider()->send(paths_batch({"/a"}), t.fn());
    EXPECT_EQ(r.outcome, c.outcome) << c.sqlstate;
    EXPECT_FALSE(r.reachable) << c.sqlstate;
    EXPECT_EQ(r.api_calls, 1);
    EXPECT_EQ(r.error, "could not connect to cf.test: Connection refused");
    EXPECT_FALSE(r.throttled);
  }
}

TEST(CloudFrontSend, ReadsRetryAfterInSecondsOrAsAnHttpDate) {
  const struct {
    const char *value;
    double seconds;
  } cases[] = {
      {"120", 120},
      {" 5 ", 5},
      {"Tue, 14 Nov 2023 22:15:20 GMT", 120},  // kNow + 2 min
      {"Tuesday, 14-Nov-23 22:13:50 GMT", 30},
      {"Tue Nov 14 22:14:20 2023", 60},
      {"Tue, 14 Nov 2023 22:00:00 GMT", 0},  // past: now
      {"soon", -1},
      {"", -1},
  };
  for (const auto &c : cases) {
    FakeTransport t;
    t.answer(503, "", {{"retry-after", c.value}});
    const SendResult r = provider()->send(paths_batch({"/a"}), t.fn());
    EXPECT_EQ(r.outcome, Outcome::kRetry);
    EXPECT_DOUBLE_EQ(r.retry_after_s, c.seconds) << c.value;
  }
  FakeTransport t;
  t.answer(400, error_xml("TooManyInvalidationsInProgress", "x"));
  EXPECT_EQ(provider()->send(paths_batch({"/a"}), t.fn()).retry_after_s, -1)
      << "no header, no hint";
}

TEST(CloudFrontSend, AnUnreadableSuccessIsRetriedNotFailed) {
  for (const std::string &body : {std::string("<Invalidation><Id>I1</Id>"),
                                  std::string("<Invalidation><Status>InProgress</Status>"
                                              "</Invalidation>"),
                                  std::string("<Invalidation><Id>bad/id</Id><Status>InProgress"
                                              "</Status></Invalidation>"),
                                  std::string("")}) {
    FakeTransport t;
    t.answer(201, body);
    const SendResult r = provider()->send(paths_batch({"/a"}), t.fn());
    EXPECT_EQ(r.outcome, Outcome::kRetry) << body;
    EXPECT_EQ(r.provider_id, "") << body;
    EXPECT_NE(r.error, "") << body;
    EXPECT_TRUE(r.reachable);
  }
}

TEST(CloudFrontSend, ReadsAnAnswerCutShortInTheEchoedBatch) {
  // A 3000-path batch comes back echoed in full; a transport with a body cap
  // cuts it, but Id and Status come first.
  std::string body = invalidation_xml("ICUT", "InProgress");
  body.resize(body.find("<Path>") + 3);
  HttpExchange x;
  x.response.status = 201;
  x.response.body = body;
  x.response.body_truncated = true;
  FakeTransport t;
  t.answers.push_back(x);
  SendResult r = provider()->send(paths_batch({"/a"}), t.fn());
  EXPECT_EQ(r.outcome, Outcome::kInProgress) << r.error;
  EXPECT_EQ(r.provider_id, "ICUT");

  x.response.body = body.substr(0, body.find("<Status>") + 5);
  t.answers.push_back(x);
  r = provider()->send(paths_batch({"/a"}), t.fn());
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_EQ(r.provider_id, "");

  x.response.body = body;
  x.response.body_truncated = false;
  t.answers.push_back(x);
  EXPECT_EQ(provider()->send(paths_batch({"/a"}), t.fn()).outcome, Outcome::kRetry)
      << "a cut body the transport did not flag is malformed";
}

TEST(CloudFrontSend, ErrorsNeverCarryTheCredentials) {
  FakeTransport t;
  t.answer(403, error_xml("InvalidClientTokenId",
                          std::string("Key ") + kKeyId + " with secret " + kSecret + " rejected"));
  t.fail("08001", std::string("could not connect with ") + kSecret,
         std::string("curl said ") + kSecret + "\r\nAuthorization: x");
  auto p = provider();
  const SendResult a = p->send(paths_batch({"/a"}), t.fn());
  const SendResult b = p->send(paths_batch({"/a"}), t.fn());
  for (const SendResult &r : {a, b}) {
    EXPECT_EQ(r.error.find(kSecret), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find(kKeyId), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find('\n'), std::string::npos) << r.error;
  }
  EXPECT_EQ(a.error, "InvalidClientTokenId: Key *** with secret *** rejected");
}

TEST(CloudFrontSend, LongErrorsAreCut) {
  FakeTransport t;
  t.answer(400, error_xml("InvalidArgument", std::string(5000, 'x')));
  const SendResult r = provider()->send(paths_batch({"/a"}), t.fn());
  EXPECT_LE(r.error.size(), 520u);
  EXPECT_EQ(r.error.rfind("InvalidArgument: xxx", 0), 0u);
}

TEST(CloudFrontPoll, GetsTheInvalidation) {
  const struct {
    const char *status;
    Outcome outcome;
  } cases[] = {{"Completed", Outcome::kCompleted}, {"InProgress", Outcome::kInProgress}};
  for (const auto &c : cases) {
    FakeTransport t;
    t.answer(200, invalidation_xml("I2J0I21PCUYOIK", c.status));
    const SendResult r = provider()->poll(paths_batch({"/a"}), "I2J0I21PCUYOIK", t.fn());
    ASSERT_EQ(t.seen.size(), 1u);
    const HttpRequest &q = t.seen[0];
    EXPECT_EQ(q.method, "GET");
    EXPECT_EQ(q.url,
              "https://cf.test:8443/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation/"
              "I2J0I21PCUYOIK");
    EXPECT_EQ(q.body, "");
    EXPECT_EQ(q.aws_sigv4, "aws:amz:us-east-1:cloudfront");
    EXPECT_EQ(q.user, kKeyId);
    EXPECT_EQ(q.password, kSecret);
    EXPECT_EQ(r.outcome, c.outcome) << c.status;
    EXPECT_EQ(r.provider_id, "I2J0I21PCUYOIK");
    EXPECT_EQ(r.api_calls, 1);
    EXPECT_TRUE(r.reachable);
  }
}

TEST(CloudFrontPoll, ErrorsAndOddAnswers) {
  {
    FakeTransport t;
    const SendResult r = provider()->poll(paths_batch({"/a"}), "../../x", t.fn());
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_TRUE(t.seen.empty()) << "an odd id never reaches a URL";
  }
  {
    FakeTransport t;
    t.answer(404, error_xml("NoSuchInvalidation", "The specified invalidation does not exist."));
    const SendResult r = provider()->poll(paths_batch({"/a"}), "IX", t.fn());
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_EQ(r.error, "NoSuchInvalidation: The specified invalidation does not exist.");
  }
  {
    FakeTransport t;
    t.answer(429, error_xml("Throttling", "Rate exceeded"), {{"Retry-After", "2"}});
    const SendResult r = provider()->poll(paths_batch({"/a"}), "IX", t.fn());
    EXPECT_EQ(r.outcome, Outcome::kRetry);
    EXPECT_TRUE(r.throttled);
    EXPECT_EQ(r.retry_after_s, 2);
  }
  {
    FakeTransport t;
    t.fail("57014", "timed out");
    EXPECT_EQ(provider()->poll(paths_batch({"/a"}), "IX", t.fn()).outcome, Outcome::kRetry);
  }
  {
    FakeTransport t;
    t.answer(200, invalidation_xml("IOTHER", "Completed"));
    const SendResult r = provider()->poll(paths_batch({"/a"}), "IX", t.fn());
    EXPECT_EQ(r.outcome, Outcome::kRetry) << "an answer about another invalidation proves nothing";
  }
  {
    FakeTransport t;
    t.answer(200, invalidation_xml("IX", "Pending"));
    const SendResult r = provider()->poll(paths_batch({"/a"}), "IX", t.fn());
    EXPECT_EQ(r.outcome, Outcome::kRetry);
    EXPECT_EQ(r.error, "unknown invalidation status Pending");
  }
}

TEST(CloudFrontProvider, NameAndLimits) {
  auto p = provider();
  EXPECT_STREQ(p->name(), "cloudfront");
  const Limits l = p->limits();
  EXPECT_EQ(l.max_items_per_batch, 3000u);
  EXPECT_EQ(l.max_in_progress_paths, 3000u);
  EXPECT_EQ(l.max_in_progress_wildcards, 15u);
  EXPECT_TRUE(l.supports_wildcards);
  EXPECT_FALSE(l.supports_tags);
  EXPECT_TRUE(l.supports_all);
}

TEST(CloudFrontConfig, EndpointsAreNormalised) {
  for (const char *endpoint :
       {"https://cf.test:8443", "https://cf.test:8443/", "HTTPS://cf.test:8443//"}) {
    CloudFrontConfig c = config();
    c.endpoint = endpoint;
    FakeTransport t;
    t.answer(201, invalidation_xml("I1", "InProgress"));
    make_cloudfront(c)->send(paths_batch({"/a"}), t.fn());
    ASSERT_EQ(t.seen.size(), 1u);
    EXPECT_EQ(t.seen[0].url.substr(t.seen[0].url.find("://")),
              "://cf.test:8443/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation")
        << endpoint;
  }
  CloudFrontConfig c = config();
  c.endpoint = "http://127.0.0.1:9000/prefix";
  FakeTransport t;
  t.answer(201, invalidation_xml("I1", "InProgress"));
  make_cloudfront(c)->send(paths_batch({"/a"}), t.fn());
  ASSERT_EQ(t.seen.size(), 1u);
  EXPECT_EQ(t.seen[0].url,
            "http://127.0.0.1:9000/prefix/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation");
}

TEST(CloudFrontConfig, RefusesWhatCannotWorkNamingTheSettingNotTheSecret) {
  const struct {
    void (*change)(CloudFrontConfig &);
    const char *setting;
  } cases[] = {
      {[](CloudFrontConfig &c) { c.distribution_id = ""; },
       "cachekit.cdn_cloudfront_distribution_id"},
      {[](CloudFrontConfig &c) { c.distribution_id = "edfd"; },
       "cachekit.cdn_cloudfront_distribution_id"},
      {[](CloudFrontConfig &c) { c.distribution_id = "E1/../X"; },
       "cachekit.cdn_cloudfront_distribution_id"},
      {[](CloudFrontConfig &c) { c.endpoint = ""; }, "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.endpoint = "ftp://cf.test"; },
       "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.endpoint = "https://"; }, "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.endpoint = "https://:443"; },
       "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.endpoint = "https://u:p@cf.test"; },
       "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.endpoint = "https://cf.test/?x=1"; },
       "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.endpoint = "https://cf.test/#f"; },
       "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.endpoint = "https://cf test"; },
       "cachekit.cdn_cloudfront_endpoint"},
      {[](CloudFrontConfig &c) { c.region = ""; }, "CloudFront signing region"},
      {[](CloudFrontConfig &c) { c.region = "us-east-1:x"; }, "CloudFront signing region"},
      {[](CloudFrontConfig &c) { c.access_key_id = ""; }, "cachekit.cdn_aws_access_key_id"},
      {[](CloudFrontConfig &c) { c.access_key_id = "AKID:x"; }, "cachekit.cdn_aws_access_key_id"},
      {[](CloudFrontConfig &c) { c.secret_access_key = ""; }, "cachekit.cdn_aws_credentials_file"},
      {[](CloudFrontConfig &c) { c.secret_access_key = std::string(kSecret) + "\n"; },
       "cachekit.cdn_aws_credentials_file"},
  };
  for (const auto &k : cases) {
    CloudFrontConfig c = config();
    k.change(c);
    try {
      make_cloudfront(c);
      ADD_FAILURE() << "accepted a bad " << k.setting;
    } catch (const Error &e) {
      EXPECT_STREQ(e.sqlstate(), "22023");
      const std::string all = std::string(e.what()) + e.detail() + e.hint();
      EXPECT_NE(std::string(e.what()).find(k.setting), std::string::npos) << e.what();
      EXPECT_EQ(all.find(kSecret), std::string::npos) << all;
    }
  }
  EXPECT_NO_THROW(make_cloudfront(config()));
}

}  // namespace
}  // namespace cachekit::cdn
