// The libcurl easy-handle setup that every cachekit transfer (http tasks, CDN
// purges, e-mail) shares, so that none of them can forget a part of it.
//
// A CurlEasy never raises a signal (CURLOPT_NOSIGNAL: it runs in a backend's
// or a worker's main thread, whose signal handlers belong to Postgres), keeps
// curl's own error text, speaks only the protocols it was made for (also after
// a redirect, though none is followed) and ignores proxies from the
// environment, which would otherwise be connected to instead of the host
// that the caller checked.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

#include "core/error.h"

namespace cachekit {

// CURL and CURLM are both void in curl.h, so the multi handle has a deleter
// of its own (where it is used).
struct CurlDeleter {
  void operator()(CURL *h) const { curl_easy_cleanup(h); }
  void operator()(CURLU *u) const { curl_url_cleanup(u); }
  void operator()(curl_slist *l) const { curl_slist_free_all(l); }
};
using CurlUrl = std::unique_ptr<CURLU, CurlDeleter>;
using CurlList = std::unique_ptr<curl_slist, CurlDeleter>;

class CurlEasy {
 public:
  // protocols: as for CURLOPT_PROTOCOLS_STR ("http,https"). setup_failure:
  // the message of the error (XX000) thrown when an option cannot be set.
  CurlEasy(const char *protocols, const char *setup_failure);
  // curl keeps pointers to the error buffer: the object stays where it is.
  CurlEasy(const CurlEasy &) = delete;
  CurlEasy &operator=(const CurlEasy &) = delete;

  CURL *get() const { return handle_.get(); }

  template <typename T>
  void set(CURLoption option, T value) {
    CURLcode rc = curl_easy_setopt(handle_.get(), option, value);
    if (rc != CURLE_OK) setup_failed(rc);
  }

  // curl's description of a failed transfer, as a sentence: the error
  // buffer's text, else the code's.
  std::string error_text(CURLcode rc) const;

 private:
  [[noreturn]] void setup_failed(CURLcode rc) const;

  std::unique_ptr<CURL, CurlDeleter> handle_;
  const char *setup_failure_;
  char errbuf_[CURL_ERROR_SIZE] = "";
};

// Throws 53200 when out of memory.
CurlUrl new_curl_url();
void curl_list_append(CurlList &list, const std::string &item);

// A part of a parsed URL; empty when it has none.
std::string curl_url_part(CURLU *url, CURLUPart part, unsigned int flags = 0);

// The transfer failed before anything was exchanged with the peer: name
// resolution, connection or TLS handshake (including certificate checks).
bool curl_connect_failure(CURLcode rc);

}  // namespace cachekit
