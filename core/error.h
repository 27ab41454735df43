#pragma once
// One error type and one check macro for the whole engine. Messages name the op (or file/tensor)
// and carry the source location, so a failure deep inside a kernel launcher is traceable.
#include <sstream>
#include <stdexcept>
#include <string>

namespace pe {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void build_msg(std::ostringstream&) {}
template <typename T, typename... Rest>
void build_msg(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  build_msg(os, rest...);
}
template <typename... Args>
[[noreturn]] void throw_error(const char* file, int line, const Args&... args) {
  std::ostringstream os;
  build_msg(os, args...);
  os << " [" << file << ":" << line << "]";
  throw Error(os.str());
}
}  // namespace detail

}  // namespace pe

// PE_CHECK(cond, "op: message ", value, ...) throws pe::Error with the message and file:line.
#define PE_CHECK(cond, ...)                                          \
  do {                                                               \
    if (!(cond)) ::pe::detail::throw_error(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
#define PE_FAIL(...) ::pe::detail::throw_error(__FILE__, __LINE__, __VA_ARGS__)
