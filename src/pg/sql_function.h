// Declares a SQL-callable C function from C++ (unmangled name, V1 calling
// convention). The body should be a cpp_entry(...) call.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
}

#define CK_SQL_FUNCTION(name) \
  extern "C" {                \
  PG_FUNCTION_INFO_V1(name);  \
  }                           \
  extern "C" Datum name(PG_FUNCTION_ARGS)
