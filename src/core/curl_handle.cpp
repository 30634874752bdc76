#include "core/curl_handle.h"

#include <string>

namespace cachekit {

CurlEasy::CurlEasy(const char *protocols, const char *setup_failure)
    : handle_(curl_easy_init()), setup_failure_(setup_failure) {
  if (!handle_) throw Error(sqlstate::kOutOfMemory, "out of memory");
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_ERRORBUFFER, errbuf_);
  set(CURLOPT_PROTOCOLS_STR, protocols);
  set(CURLOPT_REDIR_PROTOCOLS_STR, protocols);
  set(CURLOPT_FOLLOWLOCATION, 0L);
  // An empty proxy beats http_proxy and friends from the environment.
  set(CURLOPT_PROXY, "");
  set(CURLOPT_NOPROXY, "*");
}

std::string CurlEasy::error_text(CURLcode rc) const {
  return std::string(errbuf_[0] != '\0' ? errbuf_ : curl_easy_strerror(rc)) + ".";
}

void CurlEasy::setup_failed(CURLcode rc) const {
  throw Error(sqlstate::kInternalError, setup_failure_,
              std::string("curl_easy_setopt failed: ") + curl_easy_strerror(rc) + ".");
}

CurlUrl new_curl_url() {
  CurlUrl url(curl_url());
  if (!url) throw Error(sqlstate::kOutOfMemory, "out of memory");
  return url;
}

void curl_list_append(CurlList &list, const std::string &item) {
  curl_slist *next = curl_slist_append(list.get(), item.c_str());
  if (next == nullptr) throw Error(sqlstate::kOutOfMemory, "out of memory");
  (void)list.release();  // next is the same list, one item longer
  list.reset(next);
}

std::string curl_url_part(CURLU *url, CURLUPart part, unsigned int flags) {
  char *value = nullptr;
  if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) return {};
  std::string out(value);
  curl_free(value);
  return out;
}

bool curl_connect_failure(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
      return true;
    default:
      return false;
  }
}

}  // namespace cachekit
