#pragma once
// The `protst` command line: parses argv, runs the command, returns the exit status (0 on success,
// 1 on an error, which is printed to stderr as "protst: error: ..."; CLI11's own codes for bad
// command lines). main() is this; tests call it with argument vectors.
namespace pe {

int protst_main(int argc, const char* const* argv);

}  // namespace pe
