// The REST API's errors: a Status mapped to an HTTP status and an OpenAI-shaped body, once.
//
// Body: {"error": {"message": str, "type": str, "param": str|null, "code": str|null}} (all four
// keys always present; the OpenAI SDKs read them). 429 and 503 carry Retry-After so the SDKs'
// automatic retries back off.
#pragma once


#include <string>
#include <string_view>

#include "common/status.h"
#include "server/frontend/http/http_message.h"

namespace longbow::http {

struct HttpError {
  int http_status = 500;
  std::string_view type;  // OpenAI error type: invalid_request_error, authentication_error, ...
  std::string_view code;  // OpenAI error code, or empty for null
};

// The one Status -> HTTP mapping of the REST front end.
HttpError http_error_for(StatusCode code);

// The request field an engine validation message is about ("temperature must be in ..." ->
// "temperature"), or empty when the message names none.
std::string param_from_message(std::string_view message);

// Fills `res` with the status, the OpenAI error body and (for 429/503) Retry-After. `param` empty:
// derived from the message when it names a request field, else null.
void set_error(HttpResponse& res, const Status& status, std::string_view param = {});

// An error that is not a Status (transport-level: 404 route, 405, 413): given status, type, code.
void set_error(HttpResponse& res, int http_status, std::string_view type, std::string_view code,
               std::string_view message);

// The JSON text of an error body (also sent as an SSE event when a stream fails after its 200).
std::string error_json(const Status& status, std::string_view param = {});

}  // namespace longbow::http
