// examples/ticket_db.hpp — the tutorials' ticket "database": a JSON file {"count": N} that the
// ticket-grabbing programs read and rewrite (ticket_counter.cpp, lock_basics.cpp).
#pragma once

#include <cstdio>
#include <string>

namespace tutorial {

/// The ticket count stored in `db`, or -1 when the file is missing or malformed.
inline int load_count(const std::string& db) {
  int count = -1;
  if (FILE* f = std::fopen(db.c_str(), "r")) {
    if (std::fscanf(f, " {\"count\" : %d }", &count) != 1) count = -1;
    std::fclose(f);
  }
  return count;
}

/// Rewrites `db` to hold `count`.
inline void dump_count(const std::string& db, int count) {
  if (FILE* f = std::fopen(db.c_str(), "w")) {
    std::fprintf(f, "{\"count\": %d}", count);
    std::fclose(f);
  }
}

}  // namespace tutorial
