// The CloudFront provider: CreateInvalidation and GetInvalidation of the
// 2020-05-31 API, signed with SigV4 by libcurl (HttpRequest::aws_sigv4).
//
// make_cloudfront(CloudFrontConfig) is declared in core/cdn_provider.h; the
// declarations here are what its tests need besides.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cdn_provider.h"

namespace cachekit::cdn {

// Like make_cloudfront(config), with the clock (epoch seconds, UTC) that a
// Retry-After given as an HTTP-date is measured against.
std::unique_ptr<Provider> make_cloudfront(CloudFrontConfig config,
                                          std::function<int64_t()> now_utc);

// The CreateInvalidation request body for these paths. Throws
// cachekit::Error (22021) when a path or the reference holds a character XML
// cannot carry.
std::string cloudfront_invalidation_batch_xml(const std::vector<std::string> &paths,
                                              const std::string &caller_reference);

}  // namespace cachekit::cdn
